#!/usr/bin/env bash
# Memory and idle CPU of the tray app (all its processes: the app and WebKit's helpers), with
# the dashboard closed (tray only) and open, under Xvfb with the POS simulator connected.
# Figures go to docs/performance.md. Needs: a release (or debug) build of hisbridge-tray and
# hisbridge, xvfb-run, dbus-run-session.
set -euo pipefail
PROFILE=${PROFILE:-release}
source "$(dirname "$0")/lib.sh"
start_sim
write_config M
export APP="$bin/hisbridge-tray" CFG="$D/hisbridge.toml" SETTLE=${SETTLE:-15} IDLE=${IDLE:-60}
xvfb-run -a dbus-run-session -- bash -c '
  tree() { local p=$1; echo $p; for c in $(cat /proc/$p/task/*/children 2>/dev/null); do tree $c; done; }
  private_kb() { local t=0; for p in $(tree $1); do v=$(awk "/^Private_(Clean|Dirty):/ {s+=\$2} END {print s+0}" /proc/$p/smaps_rollup 2>/dev/null || echo 0); t=$((t+v)); done; echo $t; }
  pss_kb() { local t=0; for p in $(tree $1); do v=$(awk "/^Pss:/ {s+=\$2} END {print s+0}" /proc/$p/smaps_rollup 2>/dev/null || echo 0); t=$((t+v)); done; echo $t; }
  ticks() { local t=0; for p in $(tree $1); do v=$(awk "{print \$14+\$15}" /proc/$p/stat 2>/dev/null || echo 0); t=$((t+v)); done; echo $t; }
  report() {
    local name=$1 pid=$2 n; n=$(tree $pid | wc -l)
    local a; a=$(ticks $pid); sleep $IDLE; local b; b=$(ticks $pid)
    local hz; hz=$(getconf CLK_TCK)
    printf "%-22s processes %d  private %6d KiB  PSS %6d KiB  idle CPU %s%%\n" "$name" $n $(private_kb $pid) $(pss_kb $pid) \
      $(awk -v d=$((b-a)) -v hz=$hz -v s=$IDLE "BEGIN {printf \"%.2f\", 100*d/hz/s}")
  }
  "$APP" --config "$CFG" > /dev/null 2>&1 &
  app=$!
  sleep $SETTLE
  report "dashboard closed" $app
  "$APP" --config "$CFG" > /dev/null 2>&1   # the second launch opens the first one'"'"'s dashboard
  sleep $SETTLE
  report "dashboard open" $app
  kill $app' 2>/dev/null
