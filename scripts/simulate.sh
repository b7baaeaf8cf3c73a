#!/usr/bin/env bash
# Hunts for exactly-once violations: the deterministic simulation (tests/simulation.rs) over many
# seeds, in parallel release builds. Each job takes its own range of seeds.
#   scripts/simulate.sh --lifecycles 1000000 [--jobs 2] [--first-seed 1] [--per-seed 100]
# A failing seed prints its replay command: SIM_SEED=N SIM_LIFECYCLES=M cargo test --test simulation replay
set -euo pipefail
cd "$(dirname "$0")/.."

lifecycles=100000 jobs=$(nproc) first=1 per_seed=100
while [ $# -gt 0 ]; do
  case "$1" in
    --lifecycles) lifecycles=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --first-seed) first=$2; shift 2 ;;
    --per-seed) per_seed=$2; shift 2 ;;
    *) echo "usage: $0 [--lifecycles N] [--jobs J] [--first-seed S] [--per-seed P]" >&2; exit 2 ;;
  esac
done

# One build, copied: the hunt runs this code even while the tree changes.
exe=$(cargo test --release --test simulation --no-run 2>&1 | sed -n 's/.*Executable tests\/simulation.rs (\(.*\))/\1/p' | tail -1)
[ -x "$exe" ] || { echo "could not build the simulation" >&2; exit 1; }
logs=$(mktemp -d)
cp "$exe" "$logs/simulation"
each=$(( (lifecycles + jobs - 1) / jobs ))
seeds_each=$(( (each + per_seed - 1) / per_seed ))
start=$(date +%s)
pids=()
for j in $(seq 0 $((jobs - 1))); do
  SIM_LIFECYCLES=$each SIM_PER_SEED=$per_seed SIM_FIRST_SEED=$((first + j * seeds_each)) \
    "$logs/simulation" simulation --exact --nocapture >"$logs/$j.log" 2>&1 &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
for j in $(seq 0 $((jobs - 1))); do
  grep -E "^simulation:|^seed |^  t=|^replay:" "$logs/$j.log" || true
done
echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes'): simulated $lifecycles lifecycles in $(( $(date +%s) - start )) s on $jobs jobs (seeds $first..$((first + jobs * seeds_each - 1)))"
if [ $status -ne 0 ]; then
  echo "INVARIANT VIOLATIONS: see above (logs in $logs)"
  exit 1
fi
echo "0 invariant violations"
