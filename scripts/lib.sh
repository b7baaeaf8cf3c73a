# Shared by the scripts that run the bridge or the tray app against the POS simulator.
# Source it after `set -euo pipefail`. It gives: $top, $bin (the build's binaries, $PROFILE or
# debug), $D (a temp folder removed on exit), `track PID` (killed on exit, with its process
# group when it leads one), `start_sim` (the simulator on a pty at $D/pos) and
# `write_config KEY_ID [TOML...]` (a key and $D/hisbridge.toml for that POS).
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$top/target}/${PROFILE:-debug}
D=$(mktemp -d)
pids=()
track() { pids+=("$1"); }
cleanup() {
  for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP_TMP:-}" ] && echo "kept $D" || rm -rf "$D" 2>/dev/null || true
}
trap cleanup EXIT
# Runs a command in a process group of its own (so cleanup also stops what it starts).
spawn() { setsid "$@" & track $!; }
start_sim() {
  spawn "$bin/hisbridge" sim-pos --link "$D/pos" "$@" > "$D/sim.log" 2>&1
  for _ in $(seq 50); do [ -e "$D/pos" ] && break; sleep 0.1; done
}
write_config() {
  "$bin/hisbridge" keygen --id "$1" --out "$D/hisbridge.key" > /dev/null
  shift
  {
    printf 'data_dir = "%s"\nterminals = ["W01", "W02"]\n[pos]\nport = "%s/pos"\ndevice_id = "POS-0001"\n' "$D" "$D"
    for line in "$@"; do printf '%s\n' "$line"; done
  } > "$D/hisbridge.toml"
}
wait_for_dir() { for _ in $(seq 300); do [ -d "$1" ] && return 0; sleep 0.1; done; return 1; }
