#!/usr/bin/env bash
# A local NATS JetStream cluster for Weir's cluster mode, for development, tests and
# benchmarks. Nothing is installed system-wide: the pinned server binary goes into the
# project's own virtualenv (.venv/), from tests/cluster/requirements.txt (exact version
# and hash).
#
#   tests/cluster/nats.sh install          install the pinned nats-server; print its path
#   tests/cluster/nats.sh up [DIR] [PORT]  start 3 nodes (client ports PORT..PORT+2,
#                                          default 4222) with data in DIR (default
#                                          target/nats-cluster); print the server URLs
#   tests/cluster/nats.sh down [DIR]       stop them
#
# Every node fsyncs before it acknowledges (sync_interval: always): an acknowledged
# publish is on the disks of a quorum, which is what Weir's cluster mode promises.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.venv"
bin="$venv/bin/nats-server"

install() {
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "v2.15.1"; then
    echo "$bin"
    return
  fi
  if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --require-hashes \
    -r "$root/tests/cluster/requirements.txt" >&2
  echo "$bin"
}

up() {
  local dir="${1:-$root/target/nats-cluster}" port="${2:-4222}"
  install >/dev/null
  mkdir -p "$dir"
  local routes="" urls=""
  for i in 0 1 2; do
    routes+="nats-route://127.0.0.1:$((port + 2000 + i)),"
    urls+="nats://127.0.0.1:$((port + i)),"
  done
  for i in 0 1 2; do
    mkdir -p "$dir/n$i"
    cat >"$dir/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:$((port + i))
http: 127.0.0.1:$((port + 4000 + i))
jetstream { store_dir: "$dir/n$i", sync_interval: always }
cluster { name: weir, listen: 127.0.0.1:$((port + 2000 + i)), routes: [${routes%,}] }
EOF
    "$bin" -c "$dir/n$i.conf" >"$dir/n$i.log" 2>&1 &
    echo $! >"$dir/n$i.pid"
  done
  for i in 0 1 2; do
    for _ in $(seq 100); do
      curl -sf "http://127.0.0.1:$((port + 4000 + i))/healthz?js-enabled-only=true" >/dev/null && break
      sleep 0.1
    done
  done
  echo "${urls%,}"
}

down() {
  local dir="${1:-$root/target/nats-cluster}"
  for f in "$dir"/n*.pid; do
    [ -f "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
}

case "${1:-}" in
  install) install ;;
  up) shift; up "$@" ;;
  down) shift; down "$@" ;;
  *) sed -n '2,15p' "$0"; exit 2 ;;
esac
