#!/usr/bin/env bash
# Installs what building Weir plugins (WASM components) needs on Debian/Ubuntu:
# Debian's Rust (which ships the standard library's source, so cargo can build std for
# wasm32 with -Zbuild-std) and lld. The rustup toolchain builds the broker; Debian's
# builds the plugins. Safe to run again: it installs only what is missing.
set -euo pipefail

need=()
[ -x /usr/bin/rustc ] || need+=(rustc-web)
[ -x /usr/bin/cargo ] || need+=(cargo-web)
[ -d /usr/lib/rustlib/src/rust/library ] || need+=(rust-web-src)
dpkg -s rust-web-llvm >/dev/null 2>&1 || need+=(rust-web-llvm)
command -v rust-lld >/dev/null 2>&1 || command -v lld-22 >/dev/null 2>&1 || dpkg -s lld-22 >/dev/null 2>&1 || need+=(lld-22)

if [ ${#need[@]} -eq 0 ]; then
  echo "wasm toolchain: already installed ($(/usr/bin/rustc --version))"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "wasm toolchain: installing ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
echo "wasm toolchain: ready ($(/usr/bin/rustc --version))"
