#!/usr/bin/env bash
# The real tray app under Xvfb hosts the core: with the POS simulator on a pty, an order dropped
# into the inbox by the HIS test client gets its result. Needs: cargo build of hisbridge and
# hisbridge-tray (debug), xvfb-run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
start_sim
write_config SMOKE
spawn xvfb-run -a "$bin/hisbridge-tray" --config "$D/hisbridge.toml" --open > "$D/tray.log" 2>&1
tray=$!
wait_for_dir "$D/inbox" || { echo "tray smoke: the tray app did not start the core"; cat "$D/tray.log"; exit 1; }
out=$("$bin/hisbridge" his send --config "$D/hisbridge.toml" --terminal W01 --order TRAY0001 --amount +1.00 --wait 90)
echo "$out"
echo "$out" | grep -q '"status": "SUCCESS"' || { echo "tray smoke: no SUCCESS"; cat "$D/tray.log"; exit 1; }
kill -0 "$tray" || { echo "tray smoke: the tray app exited"; cat "$D/tray.log"; exit 1; }
echo "tray smoke: the tray app took an order through the core: ok"
