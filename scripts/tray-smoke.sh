#!/usr/bin/env bash
# The real tray app under Xvfb hosts the core: with the POS simulator on a pty, an order dropped
# into the inbox by the HIS test client gets its result. Needs: cargo build of hisbridge and
# hisbridge-tray (debug), xvfb-run.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$top/target}/debug
D=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$D" 2>/dev/null || true; }
trap cleanup EXIT

"$bin/hisbridge" sim-pos --link "$D/pos" > "$D/sim.log" 2>&1 &
pids+=($!)
"$bin/hisbridge" keygen --id SMOKE --out "$D/hisbridge.key" > /dev/null
cat > "$D/hisbridge.toml" <<TOML
data_dir = "$D"
terminals = ["W01"]
[pos]
port = "$D/pos"
device_id = "POS-0001"
TOML
for _ in $(seq 50); do [ -e "$D/pos" ] && break; sleep 0.1; done
xvfb-run -a "$bin/hisbridge-tray" --config "$D/hisbridge.toml" --open > "$D/tray.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do [ -d "$D/inbox" ] && break; sleep 0.1; done
[ -d "$D/inbox" ] || { echo "tray smoke: the tray app did not start the core"; cat "$D/tray.log"; exit 1; }
out=$("$bin/hisbridge" his send --config "$D/hisbridge.toml" --terminal W01 --order TRAY0001 --amount +1.00 --wait 90)
echo "$out"
echo "$out" | grep -q '"status": "SUCCESS"' || { echo "tray smoke: no SUCCESS"; cat "$D/tray.log"; exit 1; }
kill -0 "${pids[1]}" || { echo "tray smoke: the tray app exited"; cat "$D/tray.log"; exit 1; }
echo "tray smoke: the tray app took an order through the core: ok"
