#!/usr/bin/env bash
# Screenshots of the dashboard for docs/screenshots: the real tray app under Xvfb, the POS
# simulator on a pty, orders sent by the HIS test client. Needs: debug builds of hisbridge and
# hisbridge-tray, Xvfb, ImageMagick (`import`; apt install imagemagick). The screen is a cashier PC's 1366x768;
# `SCALE=1.5 scripts/screenshots.sh` takes the same shots with text at 150% (suffix -150);
# `HIDPI=2 scripts/screenshots.sh` on a 2732x1536 screen at GDK_SCALE=2, what a 200% display
# of the same logical size shows (suffix -200).
# The hub's monitoring page (hub-*.png) comes from its browser test, run here with
# HISBRIDGE_SCREENSHOTS (needs PostgreSQL, WebKitWebDriver, Xvfb: see tests/hub_page.rs).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
out=$top/docs/screenshots
mkdir -p "$out"
suffix=""
screen=1366x768
if [ -n "${SCALE:-}" ]; then export GDK_DPI_SCALE=$SCALE; suffix="-$(awk "BEGIN { printf \"%d\", $SCALE * 100 }")"; fi
if [ -n "${HIDPI:-}" ]; then export GDK_SCALE=$HIDPI; suffix="-${HIDPI}00"; screen="$((1366 * HIDPI))x$((768 * HIDPI))"; fi
display=:$((90 + RANDOM % 100))
spawn Xvfb "$display" -screen 0 "${screen}x24" > "$D/xvfb.log" 2>&1
start_sim
sim=${pids[-1]}
write_config SHOT "[timeouts]" "scan_secs = 4"
DISPLAY=$display spawn "$bin/hisbridge-tray" --config "$D/hisbridge.toml" --open > "$D/tray.log" 2>&1
wait_for_dir "$D/inbox"
sleep 5
send() { "$bin/hisbridge" his send --config "$D/hisbridge.toml" --wait 60 "$@" > /dev/null || true; }
send --terminal W01 --order 202611260001 --amount +12.30
send --terminal W02 --order 202611260002 --amount +8.60
send --terminal W01 --order 202611260003 --amount +56.70
send --terminal W01 --order 202611260001 --refund-no R1 --amount -2.30
sleep 2
DISPLAY=$display import -window root "$out/dashboard-paid$suffix.png"
send --terminal W02 --order 202611260004 --amount +3.92
sleep 2
DISPLAY=$display import -window root "$out/dashboard-failed$suffix.png"
send --terminal W01 --order 202611260005 --amount +2.94
sleep 2
DISPLAY=$display import -window root "$out/dashboard-timeout$suffix.png"
send --terminal W01 --order 202611260006 --amount +20.00
sleep 2
DISPLAY=$display import -window root "$out/dashboard-after-failure$suffix.png"
kill -- "-$sim"
sleep 8
DISPLAY=$display import -window root "$out/dashboard-pos-disconnected$suffix.png"
if [ -z "$suffix" ]; then
  (cd "$top" && HISBRIDGE_SCREENSHOTS=$out HISBRIDGE_REQUIRE_WEBDRIVER=1 cargo test -q --test hub_page)
fi
ls -la "$out"
