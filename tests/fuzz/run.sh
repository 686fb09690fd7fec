#!/usr/bin/env bash
# Builds every fuzz target once and runs each for SECONDS (default 30), starting from
# the committed seeds plus the project's real plugin manifests and components. CI runs
# it as a smoke test; run it longer for a real campaign:
#   bash tests/fuzz/run.sh 3600
# or one target:
#   cargo fuzz run --fuzz-dir tests/fuzz -s none produce_body -- -max_total_time=3600
# A crash leaves its input in tests/fuzz/artifacts/<target>/ and fails the run; turn
# it into a regression test before fixing it.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"
root="$(cd ../.. && pwd)"
targets=(record_batch produce_body plugin_manifest component_loader kafka_frame)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.1
fi
# Stable Rust: no sanitizer (safe Rust is bounds-checked; the fuzzers look for panics,
# aborts, hangs and memory blow-ups), RUSTC_BOOTSTRAP for cargo-fuzz's -Z flags.
export RUSTC_BOOTSTRAP=1
fuzz_dir=(--fuzz-dir "$PWD")

# Seeds from the project itself, so the fuzzers start from real inputs (components
# from the test build's guests, the small ones: wasmtime compiles every input).
mkdir -p corpus/plugin_manifest corpus/component_loader
for m in "$root"/plugins/*/plugin.toml "$root"/examples/*/plugin.toml; do
  [ -f "$m" ] && cp "$m" "corpus/plugin_manifest/$(basename "$(dirname "$m")").toml"
done
while IFS= read -r -d '' w; do
  cp -f "$w" corpus/component_loader/
done < <(find "$root/target" -path '*weir-test-artifacts-*/out/*.wasm' -size -120k -print0 2>/dev/null)

echo "== build the fuzz targets"
(cd "$root" && cargo fuzz build "${fuzz_dir[@]}" -s none --release)

status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "seeds/$t"
  log="$(mktemp)"
  secs="$seconds"
  # Each input is compiled by wasmtime (~10 per second): give it twice the time.
  [ "$t" = component_loader ] && secs=$((seconds * 2))
  echo "== fuzz $t for ${secs}s"
  if (cd "$root" && cargo fuzz run "${fuzz_dir[@]}" -s none --release "$t" "tests/fuzz/corpus/$t" "tests/fuzz/seeds/$t" -- \
      -max_total_time="$secs" -timeout=60 -rss_limit_mb=4096 -print_final_stats=1) >"$log" 2>&1; then
    runs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')"
    echo "$t: ${runs:-?} executions, 0 crashes"
  else
    status=1
    echo "$t: FAILED"
    tail -n 40 "$log"
  fi
  rm -f "$log"
done
exit "$status"
