#!/usr/bin/env bash
# Builds the MSI from installer/hisbridge.wxs with wixl (msitools), from the Windows executables
# that scripts/build-windows.sh --all made.
#   installer/build-msi.sh [VERSION] [OUT.msi] [en|zh-CN]
# VERSION defaults to the workspace version; OUT to target-windows/hisbridge-VERSION-x64.msi (for
# zh-CN hisbridge-VERSION-x64-zh-CN.msi). The zh-CN package is the same product (same UpgradeCode:
# either upgrades the other) with Chinese names in Add/Remove Programs and the Start menu
# (installer/zh-CN.tsv), language 2052 and code page 936; its text is written with Windows
# Installer's API under Wine (installer/msi-strings.c), as msitools crashes on non-ASCII text.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
version=${1:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}
lang=${3:-en}
case "$lang" in
  en) language=1033; out=${2:-target-windows/hisbridge-$version-x64.msi} ;;
  zh-CN) language=2052; out=${2:-target-windows/hisbridge-$version-x64-zh-CN.msi} ;;
  *) echo "language $lang: en or zh-CN"; exit 2 ;;
esac
bin=target-windows/x86_64-pc-windows-gnu/release
bin32=target-windows/i686-pc-windows-gnu/release
for f in "$bin/hisbridge.exe" "$bin/hisbridge-tray.exe" "$bin/WebView2Loader.dll" "$bin/hisbridge_client.dll" "$bin32/hisbridge_client.dll"; do
  [ -f "$f" ] || { echo "$f is missing: run scripts/build-windows.sh --all"; exit 1; }
done
mkdir -p "$(dirname "$out")"
wixl -a x64 -D Version="$version" -D Language="$language" -D Bin="$bin" -D Bin32="$bin32" -D Docs=docs -D Icon=src-tauri/icons/icon.ico \
  -o "$out" installer/hisbridge.wxs
# wixl leaves the File table's Version column empty: each executable's and DLL's own file
# version goes there, so that Windows Installer treats them as the versioned files they are.
for row in "hisbridge.exe $bin/hisbridge.exe" "hisbridge_tray.exe $bin/hisbridge-tray.exe" \
  "WebView2Loader.dll $bin/WebView2Loader.dll" "client32.dll $bin32/hisbridge_client.dll" \
  "client64.dll $bin/hisbridge_client.dll"; do
  read -r id file <<<"$row"
  v=$(python3 scripts/pe-version.py "$file")
  msibuild "$out" -q "UPDATE \`File\` SET \`Version\` = '$v', \`Language\` = '0' WHERE \`File\` = '$id'"
done
# wixl knows neither Permanent components nor expandable registry strings: the data folder's
# record outlives an uninstall (msidbComponentAttributesPermanent, 16), and the event log's
# message file is a REG_EXPAND_SZ ("#%" in the Registry table).
attrs=$(msiinfo export "$out" Component | awk -F'\t' '$1 == "KeptDataDir" { print $4 }')
msibuild "$out" -q "UPDATE \`Component\` SET \`Attributes\` = $((attrs | 16)) WHERE \`Component\` = 'KeptDataDir'"
msgfile=$(msiinfo export "$out" Registry | awk -F'\t' '$4 == "EventMessageFile" { print $5 }' | tr -d '\r')
msibuild "$out" -q "UPDATE \`Registry\` SET \`Value\` = '#%$msgfile' WHERE \`Name\` = 'EventMessageFile'"
# wixl has no ShortcutProperty element: the Start menu shortcut's AppUserModelID (the tray app's
# identifier, which Windows notifications name the app by) goes in as an MsiShortcutProperty row.
aumid=$(python3 -c 'import json;print(json.load(open("src-tauri/tauri.conf.json"))["identifier"])')
idt=$(mktemp -d)
printf 'MsiShortcutProperty\tShortcut_\tPropertyKey\tPropVariantValue\ns72\ts72\ts0\ts0\nMsiShortcutProperty\tMsiShortcutProperty\nAppUserModelID\tApplicationShortcut\tSystem.AppUserModel.ID\t%s\n' \
  "$aumid" > "$idt/MsiShortcutProperty.idt"
msibuild "$out" -i "$idt/MsiShortcutProperty.idt"
# Install properties reach the elevated setup step in managed installs only when secure.
secure="WIX_DOWNGRADE_DETECTED;WIX_UPGRADE_DETECTED;DATADIR;POSPORT;POSTRANSPORT;BAUD;DEVICEID;TERMINALS;SOCKETPORT;KEYFILE;HISACCOUNT;SERVICE;WINUSBDRIVER;HISDLLDIR;HISDLLARCH;PCTABLE"
msibuild "$out" -q "UPDATE \`Property\` SET \`Value\` = '$secure' WHERE \`Property\` = 'SecureCustomProperties'"
rm -rf "$idt"
if [ "$lang" = zh-CN ]; then
  # The database's code page first (936: GBK), then the Chinese text through msi.dll.
  idt=$(mktemp -d)
  printf '\r\n\r\n936\t_ForceCodepage\r\n' > "$idt/_ForceCodepage.idt"
  msibuild "$out" -i "$idt/_ForceCodepage.idt"
  rm -rf "$idt"
  tool=target-windows/msi-strings.exe
  [ "$tool" -nt installer/msi-strings.c ] || x86_64-w64-mingw32-gcc -O2 -Wall -o "$tool" installer/msi-strings.c -lmsi
  export WINEPREFIX="$top/target-windows/wine-build" WINEDEBUG=-all WINEARCH=win64
  # The prefix is kept between builds, but only for the Wine it was made with: installing Wine's
  # 32-bit half later (scripts/wine-test.sh) leaves an older prefix unable to load kernel32.dll.
  stamp=$(dpkg-query -W 'wine*' 'libwine*' 2>/dev/null | sort | sha256sum | cut -c1-16 || true)
  if [ "$(cat "$WINEPREFIX/.hisbridge-wine" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$WINEPREFIX"
    mkdir -p "$WINEPREFIX"
    WINEDLLOVERRIDES="mscoree=;mshtml=" wineboot -i > /dev/null 2>&1
    wineserver -w
    echo "$stamp" > "$WINEPREFIX/.hisbridge-wine"
  fi
  wine "$tool" "$(winepath -w "$out")" "$(winepath -w installer/zh-CN.tsv)" > /dev/null
  wineserver -w
  grep -qa 'HIS Bridge 收费' <<<"$(msiinfo export "$out" Property)" || { echo "$out: the Chinese product name did not go in"; exit 1; }
fi
# Signed last: any change to the package after this would break the signature.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$top/target-windows}"
source scripts/sign.sh
sign "$out"
verify "$out"
ls -l "$out"
