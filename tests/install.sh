#!/usr/bin/env bash
# Installs everything Weir's test suite needs on a Debian/Ubuntu machine: the WASM
# toolchain that builds the plugins (sdk/install-toolchain.sh), chromium for the
# console test, NATS and Redis for the benchmark comparison's smoke test (Debian's
# nats-server also stands for a too-old cluster), the pinned nats-server for cluster
# mode (tests/cluster/nats.sh, into the project's .venv), g++ for
# cargo-fuzz's libFuzzer, procps (kill) for the SIGTERM tests, python3 for the
# real-client tests, python3-venv, nodejs and npm for Python and JS plugins, and kcat
# for the Kafka protocol, with confluent-kafka and kafka-python (tests/kafka) in the
# virtualenv. Idempotent and quiet when everything is present; tests/run.sh
# and .ci/run call it.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v kill >/dev/null 2>&1 || need+=(procps)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# Python and JavaScript plugins: componentize-py in a virtualenv, componentize-js
# through npm (both installed on first build, at exact versions, by weir-toolchain).
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need+=(python3-venv)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# The Kafka protocol's real client (librdkafka's command line).
command -v kcat >/dev/null 2>&1 || need+=(kcat)

if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "test dependencies: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash sdk/install-toolchain.sh >/dev/null
bash tests/cluster/nats.sh install >/dev/null
# Kafka clients for the Kafka protocol tests, into the same virtualenv.
.venv/bin/pip install -q --disable-pip-version-check --require-hashes \
  -r tests/kafka/requirements.txt
