#!/usr/bin/env bash
# The HIS sample clients (Python, Java, C over the C ABI library in UTF-8 and in GBK, C# under
# Mono) against the published test vectors and against a running bridge with the POS simulator on
# a pty, over both channels; the declarations of the samples that cannot run here (PowerBuilder,
# Delphi, VB6) checked against the library's exports.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$top"
cargo build -q -p hisbridge -p hisbridge-client
if ! command -v mcs >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mono-mcs mono-runtime >/dev/null
fi

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
cc -Wall -Wextra -I crates/client/include clients/c/pay_gbk.c -L "$bin" -lhisbridge_client -Wl,-rpath,"$bin" -o "$D/pay_gbk" || fail "c gbk build"
"$D/pay_gbk" "$D/hisbridge.key" "$port" || fail "c gbk sample"

# C#: the same declarations as on Windows; Mono maps the DLL's name to the Linux library.
mcs -nologo -out:"$D/Pay.exe" clients/csharp/Pay.cs || fail "c# build"
printf '<configuration><dllmap dll="hisbridge_client.dll" target="%s/libhisbridge_client.so"/></configuration>\n' "$bin" > "$D/Pay.exe.config"
mono "$D/Pay.exe" "$D/hisbridge.key" "$port" || fail "c# sample"

python3 scripts/check-declarations.py || fail "PowerBuilder/Delphi/VB6/C# declarations"
echo "samples: 5 run (Python, Java, C, C GBK, C#), 3 checked (PowerBuilder, Delphi, VB6)"
