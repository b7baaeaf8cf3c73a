#!/usr/bin/env bash
# The Windows product under Wine: the MSI's tables, a silent install with properties (files,
# registry, Start menu, data folders, config, key), the installed hisbridge.exe taking an order
# from its ProgramData inbox and paying it on the POS simulator (Linux side) through COM5 mapped
# to the simulator's pty, over both channels; the tray app where WebView2 is missing (its bridge
# runs, the dashboard cannot open and says so); an upgrade to a newer MSI that keeps the data and
# installs the Windows service, which then drives the POS; uninstall (program, service, registry
# gone; data kept). The HIS client DLL as a 32-bit and a 64-bit HIS program loads it: from the
# folder the MSI copied it into (HISDLLDIR), GBK text, pay, refund, query, cancel, through the
# installed bridge (32-bit Wine: wine32).
# Needs the Windows build first: scripts/build-windows.sh --all.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$top"

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
need=(wine wine64 wine32:i386 wixl msitools gcc-mingw-w64-x86-64 gcc-mingw-w64-i686 xvfb xauth)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  # 32-bit programs (the 32-bit HIS client test) need Wine's i386 half.
  dpkg --print-foreign-architectures | grep -qx i386 || $SUDO dpkg --add-architecture i386
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build -q -p hisbridge

win=target-windows/x86_64-pc-windows-gnu/release
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
IFS=. read -r maj min pat <<<"$version"
newer="$maj.$min.$((pat + 1))"
newest="$maj.$min.$((pat + 2))"
msi1=$D/hisbridge-$version-x64.msi
msi2=$D/hisbridge-$newer-x64.msi
msi3=$D/hisbridge-$newest-x64.msi
installer/build-msi.sh "$version" "$msi1" > /dev/null
installer/build-msi.sh "$newer" "$msi2" > /dev/null
installer/build-msi.sh "$newest" "$msi3" > /dev/null
msizh=$D/hisbridge-$version-x64-zh-CN.msi
installer/build-msi.sh "$version" "$msizh" zh-CN > /dev/null

data="$D/no-data-yet"
pass=0
ok() { echo "  ok: $*"; pass=$((pass + 1)); }
fail() {
  echo "wine-test FAILED: $*"
  for f in "$D"/*.log "$data/logs/"*.log; do [ -f "$f" ] && { echo "--- $f"; tail -25 "$f"; }; done
  exit 1
}

echo "== MSI tables (msiinfo)"
upgrade=$(python3 -c 'import json;print(json.load(open("src-tauri/tauri.conf.json"))["bundle"]["windows"]["wix"]["upgradeCode"].upper())')
props=$(msiinfo export "$msi1" Property)
grep -q "UpgradeCode.{$upgrade}" <<<"$props" || fail "UpgradeCode is not tauri.conf.json's ($upgrade)"
grep -q "ProductVersion.$version" <<<"$props" || fail "ProductVersion"
grep -q "ALLUSERS.1" <<<"$props" || fail "not a per-machine install"
tables=$(msiinfo tables "$msi1")
for t in File Component Registry Shortcut MsiShortcutProperty CustomAction ServiceControl Upgrade; do
  grep -qx "$t" <<<"$tables" || fail "table $t missing"
done
# (Exports are read whole: `grep -q` on a pipe would stop the writer, which pipefail reports.)
export_of() { msiinfo export "$msi1" "$1"; }
grep -q "System.AppUserModel.ID.cn.hisbridge.tray" <<<"$(export_of MsiShortcutProperty)" || fail "AppUserModelID"
grep -q 'CurrentVersion.Run' <<<"$(export_of Registry)" || fail "Run key"
grep -q "setup --data-dir" <<<"$(export_of CustomAction)" || fail "setup custom action"
# Deferred actions run only inside the install script: before InstallFinalize.
seq_of() { awk -F'\t' -v a="$1" '$1 == a { print $3 }' <<<"$(export_of InstallExecuteSequence)" | tr -d '\r'; }
for a in Setup InstallDriver; do
  [ "$(seq_of "$a")" -lt "$(seq_of InstallFinalize)" ] || fail "$a is sequenced after InstallFinalize ($(seq_of "$a"))"
done
grep -q "{$upgrade}" <<<"$(export_of Upgrade)" || fail "major upgrade row"
grep -q "POSPORT;" <<<"$props" || fail "install properties not secure"
ok "UpgradeCode $upgrade, per-machine, shortcut AUMID, Run key, setup action, major upgrade"
# Every executable and DLL is a versioned file (its own version resource's), the old product is
# removed before files are installed, and an earlier service is found before that removal.
files=$(export_of File | tr -d '\r')
for id in hisbridge.exe hisbridge_tray.exe WebView2Loader.dll client32.dll client64.dll; do
  v=$(awk -F'\t' -v id="$id" '$1 == id { print $5 }' <<<"$files")
  [[ "$v" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "File $id has no version ($v)"
done
[ "$(seq_of RemoveExistingProducts)" -lt "$(seq_of InstallFiles)" ] || fail "RemoveExistingProducts after InstallFiles"
grep -q "ServicePresent" <<<"$(export_of AppSearch)" || fail "no search for an installed service"
ok "executables and DLLs versioned in the File table; the old product removed before InstallFiles"

# `wine reg` is the 32-bit reg.exe once Wine's i386 half is installed: it sees the registry's
# 32-bit view. The product is 64-bit: look at (and write) the 64-bit view.
wreg() { wine reg "$@" /reg:64; }

echo "== Wine prefix"
export WINEPREFIX=$D/wine WINEDEBUG=-all WINEARCH=win64
# No Mono/Gecko prompts on a fresh prefix: nothing here needs them.
WINEDLLOVERRIDES="mscoree=;mshtml=" wineboot -i > "$D/wineboot.log" 2>&1
wineserver -w
sys32=$WINEPREFIX/drive_c/windows/system32
# Test aid: Wine 8 has no bcryptprimitives.dll (Rust's std needs ProcessPrng from it).
x86_64-w64-mingw32-gcc -shared -o "$sys32/bcryptprimitives.dll" scripts/wine/bcryptprimitives.c \
  scripts/wine/bcryptprimitives.def -ladvapi32
wow64=$WINEPREFIX/drive_c/windows/syswow64
[ -d "$wow64" ] || fail "no 32-bit half in the Wine prefix (wine32 missing?)"
i686-w64-mingw32-gcc -shared -o "$wow64/bcryptprimitives.dll" scripts/wine/bcryptprimitives.c \
  scripts/wine/bcryptprimitives.def -ladvapi32
# The POS simulator on a pty, as COM5.
start_sim
pty=$(readlink -f "$D/pos")
wreg add 'HKLM\Software\Wine\Ports' /v COM5 /d "$pty" /f > /dev/null 2>&1
wineserver -k || true
wineserver -w
ok "prefix ready, COM5 -> $pty"

progdir="$WINEPREFIX/drive_c/Program Files/HIS Bridge"
data="$WINEPREFIX/drive_c/ProgramData/HISBridge"
"$bin/hisbridge" keygen --id WINEK1 --out "$D/agreed.key" > /dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
msiexec() { wine msiexec "$@" > "$D/msiexec.log" 2>&1; }
reg_value() { wreg query "$1" /v "$2" 2>/dev/null | tr -d '\r' | awk -v n="$2" '$1 == n { $1=""; $2=""; sub(/^  */, ""); print }'; }

echo "== silent install with properties"
msiexec /i "$(winepath -w "$msi1")" /qn /l*v "$(winepath -w "$D/install.log")" \
  POSPORT=COM5 DEVICEID=POS-0001 "TERMINALS=W01,W02" SOCKETPORT="$port" KEYFILE="$(winepath -w "$D/agreed.key")" \
  'HISDLLDIR=C:\HIS\' \
  || fail "msiexec /i exit $?"
for f in hisbridge.exe hisbridge-tray.exe docs/install.md docs/his-interface.md docs/pos-protocol.md \
  drivers/hisbridge-android-accessory.inf sdk/x86/hisbridge_client.dll sdk/x64/hisbridge_client.dll sdk/hisbridge.h \
  sdk/hisbridge_client.def; do
  [ -f "$progdir/$f" ] || fail "$f not installed"
done
ok "programs in Program Files, the HIS client library in sdk\\x86 and sdk\\x64"
hisdir="$WINEPREFIX/drive_c/HIS"
file "$hisdir/hisbridge_client.dll" 2>/dev/null | grep -q "PE32 executable (DLL).*80386" \
  || fail "HISDLLDIR: no 32-bit hisbridge_client.dll in C:\\HIS ($(ls "$hisdir" 2>&1))"
ok "HISDLLDIR=C:\\HIS\\: the 32-bit DLL copied beside the HIS program"
source scripts/sign.sh
verify "$msi1" "$progdir/hisbridge.exe" "$progdir/hisbridge-tray.exe" "$progdir/sdk/x86/hisbridge_client.dll" \
  "$progdir/sdk/x64/hisbridge_client.dll" "$hisdir/hisbridge_client.dll" 2>&1 | tail -3 || fail "a signature does not verify"
ok "the MSI and every installed program and DLL carry a verified Authenticode signature"
[ "$(reg_value 'HKLM\Software\HISBridge' Version)" = "$version" ] || fail "registry Version"
[ "$(reg_value 'HKLM\Software\HISBridge' DataDir)" = 'C:\ProgramData\HISBridge\' ] || fail "registry DataDir: $(reg_value 'HKLM\Software\HISBridge' DataDir)"
run=$(reg_value 'HKLM\Software\Microsoft\Windows\CurrentVersion\Run' 'HIS Bridge' || true)
[ -n "$run" ] || run=$(wreg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Run' 2>/dev/null | tr -d '\r' | grep 'hisbridge-tray.exe' || true)
grep -q 'hisbridge-tray.exe' <<<"$run" || fail "tray not started at logon (Run key)"
code=$(reg_value 'HKLM\Software\HISBridge' ProductCode)
[[ "$code" =~ ^\{[0-9A-F-]+\}$ ]] || fail "registry ProductCode: $code"
help=$(reg_value "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\$code" HelpLink)
[ "$help" = 'C:\Program Files\HIS Bridge\docs\install.md' ] || fail "Add/Remove Programs help link: $help"
ok "registry: Version $version, DataDir, tray at logon, ProductCode $code, help link to the installed guide"
evkey='HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\HISBridge'
grep -q 'EventLogMessages.dll' <<<"$(reg_value "$evkey" EventMessageFile)" || fail "event log source not registered: $(wreg query "$evkey" 2>&1 | tr -d '\r')"
grep -q 'REG_EXPAND_SZ' <<<"$(wreg query "$evkey" /v EventMessageFile 2>&1)" || fail "the message file is not REG_EXPAND_SZ"
ok "the Application event log source HISBridge registered with its message file"
# ALLUSERS=1 puts it in the common Start menu on Windows; Wine's msi resolves ProgramMenuFolder
# to the user's, so either is accepted here.
lnk=$(find "$WINEPREFIX/drive_c" -path '*Start Menu/Programs/HIS Bridge/HIS Bridge.lnk' | head -1)
[ -n "$lnk" ] || fail "Start menu shortcut"
grep -aq "hisbridge-tray.exe" "$lnk" || fail "shortcut target"
ok "Start menu shortcut"
for d in inbox outbox work archive error reconciliation logs; do [ -d "$data/$d" ] || fail "data folder $d"; done
grep -q 'port = "COM5"' "$data/hisbridge.toml" || fail "config port"
grep -q 'terminals = \["W01", "W02"\]' "$data/hisbridge.toml" || fail "config terminals"
grep -q "port = $port" "$data/hisbridge.toml" || fail "config socket port"
grep -q 'key_id = "WINEK1"' "$data/hisbridge.key" || fail "key imported"
grep -q "config .* written" "$data/logs/setup.log" || fail "setup log"
ok "ProgramData: folders, config from properties, key imported, setup.log"

# IT guards the tray's settings with a password (install.md §4): only its hash reaches the config,
# the config still loads (the bridge below runs on it) and the upgrade keeps it (the config's sum).
printf 'Xinxike-2026\r\n' > "$WINEPREFIX/drive_c/it-password.txt"
wine "C:\\Program Files\\HIS Bridge\\hisbridge.exe" it-password --password-file 'C:\it-password.txt' > "$D/itpw.log" 2>&1 \
  || fail "it-password: $(cat "$D/itpw.log")"
rm -f "$WINEPREFIX/drive_c/it-password.txt"
grep -q 'it_password_hash = "\$argon2id\$' "$data/hisbridge.toml" || fail "the IT password's hash is not in the config"
! grep -q Xinxike "$data/hisbridge.toml" || fail "the IT password itself is in the config"
grep -q 'port = "COM5"' "$data/hisbridge.toml" || fail "it-password lost the config's port"
ok "IT password: its hash set in the installed config"

# The HIS side runs on Linux against the same folders and key.
cat > "$D/his.toml" <<EOF
data_dir = "$data"
key_file = "$D/agreed.key"
terminals = ["W01", "W02"]
[pos]
port = "COM5"
device_id = "POS-0001"
[socket]
port = $port
EOF
pay() { # ORDER AMOUNT CHANNEL
  "$bin/hisbridge" his send --config "$D/his.toml" --terminal W01 --order "$1" --amount "$2" --channel "$3" --wait 120 \
    > "$D/his-$1.out" 2>&1 || fail "order $1 over $3: $(tail -3 "$D/his-$1.out")"
  grep -q '"status": "SUCCESS"' "$D/his-$1.out" || fail "order $1 not paid: $(cat "$D/his-$1.out")"
  grep -q '"device_id": "POS-0001"' "$D/his-$1.out" || fail "order $1 device"
}

echo "== the installed hisbridge.exe run: an order through the ProgramData inbox"
spawn wine "C:\\Program Files\\HIS Bridge\\hisbridge.exe" run --config 'C:\ProgramData\HISBridge\hisbridge.toml' > "$D/run.log" 2>&1
run_pid=$!
pay WINE0001 +12.30 folder
ok "order WINE0001 dropped in the ProgramData inbox, paid on the simulator through COM5, result in the outbox"
pay WINE0002 +8.60 socket
ok "order WINE0002 over the localhost socket"
# The installed program finds its config without --config (the registry's ConfigFile).
wine "C:\\Program Files\\HIS Bridge\\hisbridge.exe" report --json > "$D/report-default.json" 2> "$D/report-default.log" \
  || fail "report without --config: $(tail -3 "$D/report-default.log")"
grep -q WINE0002 "$D/report-default.json" || fail "report without --config: $(head -5 "$D/report-default.json")"
ok "hisbridge.exe report without --config reads the installed config"
# The HIS as hospitals have it: a 32-bit program loading the 32-bit DLL from its own folder
# (copied there by HISDLLDIR), and a 64-bit one loading sdk\x64's; GBK strings both ways.
i686-w64-mingw32-dlltool -d crates/client/hisbridge_client.def -l "$D/libhb32.a" -k
i686-w64-mingw32-gcc -O2 -Wall -I crates/client/include clients/c/pay_gbk.c "$D/libhb32.a" -o "$hisdir/pay_gbk.exe"
mkdir -p "$WINEPREFIX/drive_c/HIS64"
cp "$progdir/sdk/x64/hisbridge_client.dll" "$WINEPREFIX/drive_c/HIS64/"
# (64-bit names carry no decoration: the DLL itself serves as the import library.)
x86_64-w64-mingw32-gcc -O2 -Wall -I crates/client/include clients/c/pay_gbk.c "$WINEPREFIX/drive_c/HIS64/hisbridge_client.dll" \
  -o "$WINEPREFIX/drive_c/HIS64/pay_gbk.exe"
keyw=$(winepath -w "$D/agreed.key")
for bits in 32 64; do
  dir='C:\HIS'; [ $bits = 64 ] && dir='C:\HIS64'
  wine "$dir\\pay_gbk.exe" "$keyw" "$port" > "$D/pay_gbk$bits.log" 2>&1 || fail "the ${bits}-bit HIS caller: $(tail -5 "$D/pay_gbk$bits.log")"
  grep -q "pointer size $((bits / 8)) bytes" "$D/pay_gbk$bits.log" || fail "not a ${bits}-bit caller: $(head -2 "$D/pay_gbk$bits.log")"
  grep -q "pay_gbk: all ok" "$D/pay_gbk$bits.log" || fail "the ${bits}-bit HIS caller: $(cat "$D/pay_gbk$bits.log")"
  ok "a ${bits}-bit HIS program: hisbridge_payA/queryA/cancelA/getA in GBK through the installed bridge (pay, refund, query, pending, cancel)"
done
kill -- "-$run_pid" 2>/dev/null || true
wineserver -k || true
wineserver -w

echo "== the tray app where WebView2 is missing (Wine has none)"
# The tray icon and the bridge run; only the dashboard cannot open, and the app says so.
spawn xvfb-run -a wine "C:\\Program Files\\HIS Bridge\\hisbridge-tray.exe" --open --config 'C:\ProgramData\HISBridge\hisbridge.toml' > "$D/tray.log" 2>&1
tray_pid=$!
for _ in $(seq 600); do
  grep -q '"mode": "tray"' "$data/status.json" 2>/dev/null && grep -q '"link": "ready"' "$data/status.json" && break
  sleep 0.1
done
grep -q '"mode": "tray"' "$data/status.json" || fail "the tray app's bridge did not start: $(tail -5 "$D/tray.log")"
pay WINE0004 +4.00 folder
ok "hisbridge-tray.exe without WebView2: its bridge drives the POS (order WINE0004 paid)"
# One log folder: the tray app's log is in the data folder's, with the service's and setup.log.
traylog="$data/logs/hisbridge-tray.log"
for _ in $(seq 100); do grep -q "the dashboard cannot open" "$traylog" 2>/dev/null && break; sleep 0.1; done
grep -q "the dashboard cannot open" "$traylog" || fail "the missing dashboard is not reported: $(tail -5 "$traylog" 2>/dev/null)"
ok "the dashboard that cannot open is logged and notified, payments carry on"
kill -- "-$tray_pid" 2>/dev/null || true
wineserver -k || true
wineserver -w

echo "== upgrade to $newer (no properties) with the service"
sum() { sha256sum "$data/hisbridge.toml" "$data/hisbridge.key" | awk '{print $1}' | tr '\n' ' '; }
before=$(sum)
msiexec /i "$(winepath -w "$msi2")" /qn /l*v "$(winepath -w "$D/upgrade.log")" SERVICE=1 || fail "upgrade exit $?"
[ "$(reg_value 'HKLM\Software\HISBridge' Version)" = "$newer" ] || fail "registry Version after upgrade"
[ "$(sum)" = "$before" ] || fail "config or key changed by the upgrade"
[ -s "$data/journal.sqlite" ] || fail "journal lost"
n=$(wreg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall' 2>/dev/null | tr -d '\r' | grep -c '{' || true)
[ "$n" -eq 1 ] || fail "$n products registered after the upgrade (expected 1)"
"$bin/hisbridge" report --config "$D/his.toml" --json > "$D/report.json" 2>"$D/report.log" || fail "report after upgrade"
grep -q WINE0001 "$D/report.json" || fail "the journal lost WINE0001 in the upgrade"
ok "version $newer, one product, config/key unchanged, journal kept"
grep -q "service HISBridge installed" "$data/logs/setup.log" || fail "service not installed: $(tail -5 "$data/logs/setup.log")"
wine "C:\\Program Files\\HIS Bridge\\hisbridge.exe" service status > "$D/svc.out" 2>&1 || true
grep -q "Running" "$D/svc.out" || fail "service not running: $(cat "$D/svc.out")"
# Restarted after a failure (Wine accepts the actions; it knows neither the flag for failures
# that are not crashes nor the delayed start, and setup.log says so).
grep -q "HISBridge recovery: restart after 10 s, 30 s, then 60 s" "$data/logs/setup.log" \
  || fail "no recovery actions: $(grep HISBridge "$data/logs/setup.log" | tail -5)"
svclog="$data/logs/hisbridge-service.log"
grep -q "Application event log: HIS Bridge service running" "$svclog" \
  || fail "the service's start is not in the event log: $(tail -5 "$svclog")"
ok "service HISBridge installed and running, with its recovery actions; its start written to the Application event log"
pay WINE0003 +3.00 folder
ok "order WINE0003 paid with the service driving the POS"
status=$(cat "$data/status.json" 2>/dev/null || true)
grep -q '"mode": "service"' <<<"$status" || fail "status.json does not name the service: $status"
ok "the service publishes its status for the tray app (status-only mode)"
# The tray app started beside the service does not drive the POS; it shows the service's status.
: > "$traylog"
spawn xvfb-run -a wine "C:\\Program Files\\HIS Bridge\\hisbridge-tray.exe" --config 'C:\ProgramData\HISBridge\hisbridge.toml' > "$D/tray2.log" 2>&1
tray_pid=$!
for _ in $(seq 300); do grep -q "status only" "$traylog" 2>/dev/null && break; sleep 0.1; done
grep -q "another instance drives the POS; status only" "$traylog" || fail "the tray app beside the service: $(tail -5 "$traylog")"
grep -q '"mode": "service"' "$data/status.json" || fail "the tray app took the POS from the service"
pay WINE0005 +5.00 socket
ok "the tray app beside the service shows status only; the service keeps the POS (WINE0005 paid)"
kill -- "-$tray_pid" 2>/dev/null || true

echo "== upgrade to $newest without properties keeps the service"
msiexec /i "$(winepath -w "$msi3")" /qn /l*v "$(winepath -w "$D/upgrade2.log")" || fail "upgrade exit $?"
[ "$(reg_value 'HKLM\Software\HISBridge' Version)" = "$newest" ] || fail "registry Version after the second upgrade"
wine "C:\\Program Files\\HIS Bridge\\hisbridge.exe" service status --json > "$D/svc2.out" 2>&1 || true
grep -q '"state": "Running"' "$D/svc2.out" || fail "the service did not survive an upgrade without SERVICE=1: $(cat "$D/svc2.out")"
pay WINE0006 +6.00 folder
ok "version $newest without SERVICE=1: the service kept, running and paying (WINE0006)"

echo "== downgrade refused"
if msiexec /i "$(winepath -w "$msi1")" /qn; then fail "the older MSI installed over the newer one"; fi
[ "$(reg_value 'HKLM\Software\HISBridge' Version)" = "$newest" ] || fail "version changed by a refused downgrade"
ok "the $version MSI does not install over $newest"

echo "== uninstall"
# By the product code the registry names, as IT finds it.
code=$(reg_value 'HKLM\Software\HISBridge' ProductCode)
msiexec /x "$code" /qn /l*v "$(winepath -w "$D/uninstall.log")" || fail "msiexec /x $code exit $?"
[ ! -e "$progdir/hisbridge.exe" ] || fail "program left after uninstall"
wreg query 'HKLM\Software\HISBridge' > /dev/null 2>&1 && fail "registry key left after uninstall"
wreg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Run' 2>/dev/null | grep -q hisbridge && fail "Run entry left"
grep -q "service HISBridge removed" "$data/logs/setup.log" || fail "the uninstall did not remove the service"
if wine sc query HISBridge > "$D/sc.out" 2>&1; then fail "service left after uninstall: $(cat "$D/sc.out")"; fi
for f in hisbridge.toml hisbridge.key journal.sqlite; do [ -s "$data/$f" ] || fail "data $f removed by uninstall"; done
[ ! -e "$data/status.json" ] || fail "status.json left after uninstall: $(cat "$data/status.json")"
ok "program, registry, logon entry, service and status.json removed; config, key and journal kept"
[ "$(reg_value 'HKLM\Software\HISBridge Data' DataDir)" = 'C:\ProgramData\HISBridge\' ] || fail "the kept data folder is not recorded"

echo "== DATADIR without its trailing backslash, and a reinstall that finds the data kept"
msiexec /i "$(winepath -w "$msi1")" /qn /l*v "$(winepath -w "$D/install2.log")" 'DATADIR=C:\HISData2' || fail "install with DATADIR exit $?"
[ "$(reg_value 'HKLM\Software\HISBridge' ConfigFile)" = 'C:\HISData2\hisbridge.toml' ] \
  || fail "DATADIR=C:\HISData2: ConfigFile $(reg_value 'HKLM\Software\HISBridge' ConfigFile)"
grep -q 'HISData2\\hisbridge.toml' <<<"$(wreg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Run' 2>/dev/null)" \
  || fail "the Run key does not name C:\HISData2\hisbridge.toml"
[ -f "$WINEPREFIX/drive_c/HISData2/hisbridge.toml" ] || fail "no config in C:\HISData2"
msiexec /x "$(winepath -w "$msi1")" /qn || fail "uninstall exit $?"
msiexec /i "$(winepath -w "$msi1")" /qn /l*v "$(winepath -w "$D/install3.log")" || fail "reinstall exit $?"
[ "$(reg_value 'HKLM\Software\HISBridge' DataDir)" = 'C:\HISData2\' ] \
  || fail "the reinstall did not find the kept data folder: $(reg_value 'HKLM\Software\HISBridge' DataDir)"
msiexec /x "$(winepath -w "$msi1")" /qn || fail "uninstall exit $?"
ok "DATADIR=C:\HISData2 gets its backslash (registry, Run key); a reinstall without DATADIR finds the data kept"

echo "== the zh-CN MSI"
verify "$msizh" || fail "the zh-CN MSI's signature"
msiexec /i "$(winepath -w "$msizh")" /qn /l*v "$(winepath -w "$D/install-zh.log")" || fail "zh-CN install exit $?"
code=$(reg_value 'HKLM\Software\HISBridge' ProductCode)
wreg export "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\$code" "$(winepath -w "$D/arp.reg")" /y > /dev/null 2>&1 || true
name=$(iconv -f UTF-16LE -t UTF-8 "$D/arp.reg" 2>/dev/null | tr -d '\r' | sed -n 's/^"DisplayName"="\(.*\)"$/\1/p')
[ "$name" = "HIS Bridge 收费支付桥接" ] || fail "zh-CN Add/Remove Programs name: $name"
lnk=$(find "$WINEPREFIX/drive_c" -path '*Start Menu/Programs/HIS Bridge 收费支付桥接/HIS Bridge 收费支付桥接.lnk' | head -1)
[ -n "$lnk" ] || fail "zh-CN Start menu shortcut: $(find "$WINEPREFIX/drive_c" -path '*Start Menu/Programs/*' -name '*.lnk' | head -3)"
[ -f "$progdir/hisbridge.exe" ] || fail "zh-CN: programs not installed"
msiexec /x "$code" /qn || fail "zh-CN uninstall exit $?"
ok "the zh-CN MSI installs: HIS Bridge 收费支付桥接 in Add/Remove Programs and the Start menu, and uninstalls"
wineserver -k || true
echo "wine-test: $pass passed, 0 failed"
