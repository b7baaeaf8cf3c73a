#!/usr/bin/env bash
# The HIS sample clients (Python, Java, C over the C ABI library) against the published test
# vectors and against a running bridge with the POS simulator on a pty, over both channels.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
cargo build -q -p hisbridge -p hisbridge-client
bin=${CARGO_TARGET_DIR:-$top/target}/debug
D=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$D" 2>/dev/null || true; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin/hisbridge" sim-pos --link "$D/pos" > "$D/sim.log" 2>&1 &
pids+=($!)
"$bin/hisbridge" keygen --id SAMPLE --out "$D/hisbridge.key" > /dev/null
cat > "$D/hisbridge.toml" <<TOML
data_dir = "$D"
terminals = ["W01"]
[pos]
port = "$D/pos"
device_id = "POS-0001"
[socket]
port = $port
TOML
for _ in $(seq 50); do [ -e "$D/pos" ] && break; sleep 0.1; done
"$bin/hisbridge" run --config "$D/hisbridge.toml" > "$D/bridge.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -d "$D/inbox" ] && break; sleep 0.1; done

fail() { echo "samples: $1 failed"; tail -30 "$D/bridge.log"; exit 1; }

python3 clients/python/hisbridge_client.py vectors docs/test-vectors.json || fail "python vectors"
python3 clients/python/hisbridge_client.py selftest --key "$D/hisbridge.key" --inbox "$D/inbox" --outbox "$D/outbox" --port "$port" || fail "python selftest"

java clients/java/HisBridgeClient.java vectors docs/test-vectors.json || fail "java vectors"
java clients/java/HisBridgeClient.java selftest "$D/hisbridge.key" "$D/inbox" "$D/outbox" "$port" || fail "java selftest"

cc -Wall -Wextra -I crates/client/include clients/c/pay.c -L "$bin" -lhisbridge_client -Wl,-rpath,"$bin" -o "$D/pay" || fail "c build"
"$D/pay" "$D/hisbridge.key" "$port" || fail "c sample"
echo "samples: 3 passed, 0 failed"
