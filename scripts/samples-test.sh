#!/usr/bin/env bash
# The HIS sample clients (Python, Java, C over the C ABI library) against the published test
# vectors and against a running bridge with the POS simulator on a pty, over both channels.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$top"
cargo build -q -p hisbridge -p hisbridge-client

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_sim
write_config SAMPLE "[socket]" "port = $port"
spawn "$bin/hisbridge" run --config "$D/hisbridge.toml" > "$D/bridge.log" 2>&1
wait_for_dir "$D/inbox"

fail() { echo "samples: $1 failed"; tail -30 "$D/bridge.log"; exit 1; }

python3 clients/python/hisbridge_client.py vectors docs/test-vectors.json || fail "python vectors"
python3 clients/python/hisbridge_client.py selftest --key "$D/hisbridge.key" --inbox "$D/inbox" --outbox "$D/outbox" --port "$port" || fail "python selftest"

java clients/java/HisBridgeClient.java vectors docs/test-vectors.json || fail "java vectors"
java clients/java/HisBridgeClient.java selftest "$D/hisbridge.key" "$D/inbox" "$D/outbox" "$port" || fail "java selftest"

cc -Wall -Wextra -I crates/client/include clients/c/pay.c -L "$bin" -lhisbridge_client -Wl,-rpath,"$bin" -o "$D/pay" || fail "c build"
"$D/pay" "$D/hisbridge.key" "$port" || fail "c sample"
echo "samples: 3 passed, 0 failed"
