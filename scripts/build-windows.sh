#!/usr/bin/env bash
# Windows builds made here with Debian's Rust and its std sources (-Zbuild-std), linked by
# mingw-w64. Output: target-windows/x86_64-pc-windows-gnu/release/ (64-bit) and
# target-windows/i686-pc-windows-gnu/release/ (the 32-bit client DLL).
#   scripts/build-windows.sh            the HIS client library hisbridge_client.dll, 32-bit
#                                       (__stdcall) and 64-bit, exports and conventions checked
#   scripts/build-windows.sh --all      also hisbridge.exe and hisbridge-tray.exe (release,
#                                       stripped, version resource and icon) and the MSI
# Every executable, DLL and the MSI is signed (scripts/sign.sh: HISBRIDGE_SIGN_PFX, else a test
# certificate) and its signature verified.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
need=(rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 gcc-mingw-w64-i686 osslsigncode)
# (wine64: the zh-CN MSI's Chinese text is written with Windows Installer's API, installer/build-msi.sh)
[ "${1:-}" = "--all" ] && need+=(wixl msitools wine wine64)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
export CARGO_TARGET_DIR="$top/target-windows"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_I686_PC_WINDOWS_GNU_LINKER=i686-w64-mingw32-gcc
export RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc
build() { /usr/bin/cargo build --release --locked -Zbuild-std=std,panic_unwind --target x86_64-pc-windows-gnu "$@"; }
out="$CARGO_TARGET_DIR/x86_64-pc-windows-gnu/release"
out32="$CARGO_TARGET_DIR/i686-pc-windows-gnu/release"

build -p hisbridge-client
x86_64-w64-mingw32-strip "$out/hisbridge_client.dll"
cp crates/client/include/hisbridge.h crates/client/hisbridge_client.def "$out/"
python3 scripts/check-dll.py "$out/hisbridge_client.dll" x64

# The 32-bit DLL. The i686 target links rsbegin.o/rsend.o, which Debian's Rust does not ship:
# built once from its std sources into its sysroot, where rustc looks for them.
sysroot=$(/usr/bin/rustc --print sysroot)
rt="$sysroot/lib/rustlib/i686-pc-windows-gnu/lib"
if [ ! -f "$rt/rsend.o" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  tmp=$(mktemp -d)
  for f in rsbegin rsend; do
    /usr/bin/rustc --target i686-pc-windows-gnu --emit=obj -C panic=abort -O --crate-type lib \
      "$sysroot/lib/rustlib/src/rust/library/rtstartup/$f.rs" -o "$tmp/$f.o"
  done
  $SUDO mkdir -p "$rt" && $SUDO cp "$tmp/rsbegin.o" "$tmp/rsend.o" "$rt/"
  rm -rf "$tmp"
fi
/usr/bin/cargo build --release --locked -Zbuild-std=std,panic_unwind --target i686-pc-windows-gnu -p hisbridge-client
i686-w64-mingw32-strip "$out32/hisbridge_client.dll"
cp crates/client/include/hisbridge.h crates/client/hisbridge_client.def "$out32/"
python3 scripts/check-dll.py "$out32/hisbridge_client.dll" x86
for dll in "$out/hisbridge_client.dll" "$out32/hisbridge_client.dll"; do
  info=$(strings -el "$dll")
  grep -qx "HIS Bridge" <<<"$info" || { echo "$dll: no version resource"; exit 1; }
done
source scripts/sign.sh
sign "$out/hisbridge_client.dll" "$out32/hisbridge_client.dll"
verify "$out/hisbridge_client.dll" "$out32/hisbridge_client.dll"
ls -l "$out/hisbridge_client.dll" "$out32/hisbridge_client.dll"
[ "${1:-}" = "--all" ] || exit 0

build -p hisbridge --bin hisbridge
build -p hisbridge-tray
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
for exe in hisbridge.exe hisbridge-tray.exe; do
  x86_64-w64-mingw32-strip "$out/$exe"
  # Both carry a version resource (product name and version) and an icon.
  info=$(strings -el "$out/$exe")
  grep -qx "HIS Bridge" <<<"$info" || { echo "$exe: no product name in its version resource"; exit 1; }
  grep -qx "$version" <<<"$info" || { echo "$exe: version $version not in its version resource"; exit 1; }
  sections=$(x86_64-w64-mingw32-objdump -h "$out/$exe")
  grep -q '\.rsrc' <<<"$sections" || { echo "$exe has no resource section"; exit 1; }
done
sign "$out/hisbridge.exe" "$out/hisbridge-tray.exe"
verify "$out/hisbridge.exe" "$out/hisbridge-tray.exe"
ls -l "$out/hisbridge.exe" "$out/hisbridge-tray.exe"
installer/build-msi.sh
installer/build-msi.sh "$version" "" zh-CN
