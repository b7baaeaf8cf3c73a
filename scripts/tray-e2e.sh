#!/usr/bin/env bash
# WebDriver end-to-end tests of the real tray app (scripts/tray-e2e.py) under Xvfb and a D-Bus
# session: the POS simulator on a pty, tauri-driver in front of WebKitWebDriver.
# Needs: debug builds of hisbridge and hisbridge-tray, xvfb-run, dbus-run-session,
# WebKitWebDriver (webkit2gtk-driver), tauri-driver (cargo install tauri-driver), dunst (a real
# notification server; dbus-monitor records what the app sends it), xdotool (answers the native
# cancel dialog).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
start_sim
export E2E_SIM_PID=${pids[-1]} E2E_SIM_LINK="$D/pos"
write_config E2E "[timeouts]" "scan_secs = 4"
export E2E_APP="$bin/hisbridge-tray" E2E_CONFIG="$D/hisbridge.toml" E2E_HISBRIDGE="$bin/hisbridge"
# Ordinary notices expire after 2 s, critical ones never (unless the app asks otherwise).
printf '[global]\n    font = Monospace 8\n[urgency_low]\n    timeout = 2\n[urgency_normal]\n    timeout = 2\n[urgency_critical]\n    timeout = 0\n' > "$D/dunstrc"
export E2E_NOTIFY_LOG="$D/notify.log"
export E2E_SHOTS="${E2E_SHOTS:-$top/target/e2e-screenshots}"
port=$((4500 + RANDOM % 400))
export TAURI_DRIVER="http://127.0.0.1:$port"
status=0
setsid xvfb-run -a -s "-screen 0 1280x900x24" dbus-run-session -- bash -c '
  dbus-monitor --session "interface='"'"'org.freedesktop.Notifications'"'"'" "type='"'"'method_return'"'"'" > "$E2E_NOTIFY_LOG" 2>/dev/null &
  dunst -conf "'"$D"'/dunstrc" > "'"$D"'/dunst.log" 2>&1 &
  tauri-driver --port '"$port"' --native-port '"$((port + 1))"' --native-driver "$(command -v WebKitWebDriver)" > "'"$D"'/driver.log" 2>&1 &
  drv=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/'"$port"') 2>/dev/null && break; sleep 0.1; done
  python3 "'"$top"'/scripts/tray-e2e.py"; rc=$?
  kill $drv 2>/dev/null; wait $drv 2>/dev/null
  exit $rc' 2> "$D/session.log" &
session=$!
track $session
wait $session || status=$?
if [ $status -ne 0 ]; then
  echo "tray e2e: failed; driver log:"; tail -50 "$D/driver.log" 2>/dev/null || true
  echo "session log:"; tail -30 "$D/session.log" 2>/dev/null || true
  echo "screenshots in $E2E_SHOTS"
fi
exit $status
