#!/usr/bin/env bash
# Builds the fuzz targets and runs each for the given number of seconds (default 20).
# Needs the nightly toolchain; installs cargo-fuzz when missing.
set -euo pipefail
secs=${1:-20}
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cargo +nightly fuzz build -O
for t in frame_decoder envelope order_parser; do
  mkdir -p "corpus/$t"
  echo "fuzzing $t for ${secs}s"
  cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 2>&1 | grep -E "stat::number_of_executed_units|Done|ERROR|panicked" || true
  # libFuzzer exits non-zero on a finding; the pipe above would hide it, so check artifacts.
  if ls "artifacts/$t"/crash-* "artifacts/$t"/leak-* "artifacts/$t"/timeout-* >/dev/null 2>&1; then
    echo "fuzz: $t found a failing input in fuzz/artifacts/$t"; exit 1
  fi
done
echo "fuzz: no findings"
