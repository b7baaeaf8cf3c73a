#!/usr/bin/env bash
# Screenshots of the dashboard for docs/screenshots: the real tray app under Xvfb, the POS
# simulator on a pty, orders sent by the HIS test client. Needs: debug builds of hisbridge and
# hisbridge-tray, Xvfb, ImageMagick (`import`).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$top/target}/debug
out=$top/docs/screenshots
mkdir -p "$out"
D=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$D" 2>/dev/null || true; }
trap cleanup EXIT
display=:$((90 + RANDOM % 100))
Xvfb "$display" -screen 0 1000x760x24 > "$D/xvfb.log" 2>&1 &
pids+=($!)
"$bin/hisbridge" sim-pos --link "$D/pos" > "$D/sim.log" 2>&1 &
sim=$!
pids+=($sim)
"$bin/hisbridge" keygen --id SHOT --out "$D/hisbridge.key" > /dev/null
cat > "$D/hisbridge.toml" <<TOML
data_dir = "$D"
terminals = ["W01", "W02"]
[pos]
port = "$D/pos"
device_id = "POS-0001"
TOML
for _ in $(seq 50); do [ -e "$D/pos" ] && break; sleep 0.1; done
DISPLAY=$display "$bin/hisbridge-tray" --config "$D/hisbridge.toml" --open > "$D/tray.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do [ -d "$D/inbox" ] && break; sleep 0.1; done
send() { "$bin/hisbridge" his send --config "$D/hisbridge.toml" --wait 60 "$@" > /dev/null || true; }
send --terminal W01 --order 202611260001 --amount +12.30
send --terminal W02 --order 202611260002 --amount +8.60
send --terminal W01 --order 202611260003 --amount +56.70
send --terminal W01 --order 202611260001 --refund-no R1 --amount -2.30
sleep 2
DISPLAY=$display import -window root "$out/dashboard-paid.png"
send --terminal W02 --order 202611260004 --amount +3.92
sleep 2
DISPLAY=$display import -window root "$out/dashboard-failed.png"
kill "$sim"
sleep 8
DISPLAY=$display import -window root "$out/dashboard-pos-disconnected.png"
ls -la "$out"
