#!/usr/bin/env bash
# The whole test suite, the README's second command: installs what the tests need
# (tests/install.sh), then runs the workspace's tests and the native unit tests of
# the plugin and example workspaces and of the Python and JS SDKs (their codec
# against the shared vectors) and examples. Arguments go to `cargo test --workspace`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install.sh
cargo test --workspace --locked "$@"
for ws in plugins examples; do
  (cd "$ws" && cargo test --locked --target x86_64-unknown-linux-gnu)
done
PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s sdk/python/tests
for example in examples/*-py; do
  [ ! -f "$example/test_app.py" ] || (cd "$example" && PYTHONDONTWRITEBYTECODE=1 python3 test_app.py)
done
node --test sdk/js/test/
for example in examples/*-js; do
  [ ! -f "$example/app.test.js" ] ||
    (cd "$example" && npm install --no-audit --no-fund --loglevel=error && npm test)
done
