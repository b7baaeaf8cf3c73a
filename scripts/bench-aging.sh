#!/usr/bin/env bash
# Cost as the journal ages and the inbox fills (benches/aging.rs): the bridge against journals of
# 0, 10^4, 10^5 and 10^6 generated orders and an inbox of 10,000 foreign files, beside the floor
# program (the unavoidable steps only). Prints a Markdown table for docs/performance.md.
#   scripts/bench-aging.sh [--orders N] [--idle SECS] [--cases 0,10000,100000,1000000,c0,c1000000]
# A case `cN` is N orders with 10,000 clutter files. The 10^6 journal takes about 1 GB of /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
while [ $# -gt 0 ]; do
  case "$1" in
    --orders) export BENCH_ORDERS=$2; shift 2 ;;
    --idle) export BENCH_IDLE_SECS=$2; shift 2 ;;
    --cases) export BENCH_CASES=$2; shift 2 ;;
    *) echo "usage: $0 [--orders N] [--idle SECS] [--cases LIST]" >&2; exit 2 ;;
  esac
done
exec cargo bench --bench aging
