#!/usr/bin/env bash
# Screenshots of the dashboard for docs/screenshots: the real tray app under Xvfb, the POS
# simulator on a pty, orders sent by the HIS test client. Needs: debug builds of hisbridge and
# hisbridge-tray, Xvfb, ImageMagick (`import`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
out=$top/docs/screenshots
mkdir -p "$out"
display=:$((90 + RANDOM % 100))
spawn Xvfb "$display" -screen 0 1000x760x24 > "$D/xvfb.log" 2>&1
start_sim
sim=${pids[-1]}
write_config SHOT
DISPLAY=$display spawn "$bin/hisbridge-tray" --config "$D/hisbridge.toml" --open > "$D/tray.log" 2>&1
wait_for_dir "$D/inbox"
sleep 5
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
kill -- "-$sim"
sleep 8
DISPLAY=$display import -window root "$out/dashboard-pos-disconnected.png"
ls -la "$out"
