#!/usr/bin/env bash
# Windows builds made here (x86_64-pc-windows-gnu) with Debian's Rust and its std sources
# (-Zbuild-std), linked by mingw-w64. Output: target-windows/x86_64-pc-windows-gnu/release/.
#   scripts/build-windows.sh            the HIS client library hisbridge_client.dll
#   scripts/build-windows.sh --all      also hisbridge.exe and hisbridge-tray.exe (release,
#                                       stripped, version resource and icon) and the MSI
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
need=(rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64)
[ "${1:-}" = "--all" ] && need+=(wixl msitools)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
export CARGO_TARGET_DIR="$top/target-windows"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc
build() { /usr/bin/cargo build --release --locked -Zbuild-std=std,panic_unwind --target x86_64-pc-windows-gnu "$@"; }
out="$CARGO_TARGET_DIR/x86_64-pc-windows-gnu/release"

build -p hisbridge-client
x86_64-w64-mingw32-strip "$out/hisbridge_client.dll"
cp crates/client/include/hisbridge.h "$out/"
ls -l "$out/hisbridge_client.dll"
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
ls -l "$out/hisbridge.exe" "$out/hisbridge-tray.exe"
installer/build-msi.sh
