#!/usr/bin/env bash
# The whole test suite, the README's second command: installs what the tests need
# (tests/install.sh), then runs the workspace's tests and the native unit tests of
# the plugin and example workspaces. Arguments go to `cargo test --workspace`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install.sh
cargo test --workspace --locked "$@"
for ws in plugins examples; do
  (cd "$ws" && cargo test --locked --target x86_64-unknown-linux-gnu)
done
