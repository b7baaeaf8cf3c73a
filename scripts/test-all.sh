#!/usr/bin/env bash
# Every test of the project, on a fresh Debian 12 machine with the Rust toolchain.
# Installs what it needs (apt packages for the Tauri app, Python's cryptography), then runs:
#   1. formatting and lints;  2. the core's unit and end-to-end tests (the USB transport's
#      against a POS emulated by umockdev, the bridge and pos-check against pos-sdk/java: they
#      must run here, not skip), pos-sdk/java's own JUnit tests;  3. the demo;
#   4. the published vectors against an independent AES-GCM;  5. fuzzing (nightly, cargo-fuzz);
#   6. the tray app under Xvfb: command layer, smoke test, and WebDriver end-to-end tests
#      (tauri-driver + WebKitWebDriver);  7. the Windows build (client DLL, hisbridge.exe,
#      hisbridge-tray.exe, MSI) and the MSI under Wine (install, an order through COM5, upgrade,
#      service, uninstall).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

# Free disk before each stage: a linker that runs out of disk dies of SIGBUS, far from the cause.
step() { printf '\n==== %s ====\n' "$*"; disk; }
disk() {
  local free; free=$(df -Pk "$top" | awk 'NR==2 {print int($4/1024)}')
  printf '(disk: %s MiB free)\n' "$free"
  [ "$free" -ge 2048 ] || echo "warning: under 2 GiB free on $top; the build may fail for want of disk" >&2
}
# With HISBRIDGE_FRUGAL_DISK=1 (CI), a stage's build output goes once nothing later needs it.
frugal() { [ "${HISBRIDGE_FRUGAL_DISK:-}" = 1 ] && { echo "(removing $*)"; rm -rf "$@"; } || true; }

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
apt_need=(libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev pkg-config xvfb xauth webkit2gtk-driver dbus
  umockdev gir1.2-umockdev-1.0 python3-gi junit4 dunst postgresql xdotool)
missing=()
for p in "${apt_need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python3 -c "import cryptography" 2>/dev/null || python3 -m pip install -q cryptography
if ! command -v javac >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq default-jdk-headless >/dev/null
fi

# The USB tests skip where umockdev is missing, the POS SDK's end-to-end tests where there is no
# JDK, the hub's where there is no PostgreSQL (its page's where there is no WebKitWebDriver and
# Xvfb); all were installed above, so they must run.
# (The hub's tests start throwaway clusters of their own; the package's cluster is not used.)
export HISBRIDGE_REQUIRE_UMOCKDEV=1 HISBRIDGE_REQUIRE_JAVA=1 HISBRIDGE_REQUIRE_PG=1 HISBRIDGE_REQUIRE_WEBDRIVER=1

step "format and lints (core)"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo clippy --features hardware-tests --tests -- -D warnings

step "core tests"
cargo test --no-run -q
# Let the build's disk writes settle: the tests fsync their journals, and a disk still busy
# writing back gigabytes of build output can stall an fsync for many seconds.
sync
cargo test -- --skip crash_at_every_step

step "crash test (SIGKILL at every step and at random moments)"
cargo test --test crash -- --nocapture

step "pos-sdk/java: the POS side as a library (JUnit)"
pos-sdk/java/test.sh target/pos-sdk-java

step "demo"
cargo run -q -- demo > /tmp/hisbridge-demo.out
grep -q '"status": "REFUNDED"' /tmp/hisbridge-demo.out && echo "demo: ok"

step "test vectors with Python cryptography"
python3 scripts/check-vectors.py

step "HIS sample clients (Python, Java, C ABI) against a running bridge"
scripts/samples-test.sh

step "fuzzing: each target for a bounded time"
scripts/fuzz.sh "${FUZZ_SECS:-20}"
frugal fuzz/target

step "tray app: lints, build, smoke test under Xvfb"
cargo clippy -p hisbridge-tray --all-targets -- -D warnings
cargo build -p hisbridge-tray
cargo test -p hisbridge-tray
scripts/tray-smoke.sh
command -v tauri-driver >/dev/null 2>&1 || cargo install tauri-driver --version 2.1.0 --locked -q
scripts/tray-e2e.sh

# The Linux build's intermediate files: the Wine test needs only its hisbridge binary.
frugal target/debug/deps target/debug/build target/debug/incremental target/debug/.fingerprint
step "Windows build: hisbridge_client.dll (32-bit and 64-bit), hisbridge.exe, hisbridge-tray.exe, the MSI"
scripts/build-windows.sh --all
# (build-windows.sh checked both client DLLs: machine, exports, __stdcall on 32-bit.)

step "Windows under Wine: MSI install with properties, an order through COM5, upgrade with the service, uninstall"
scripts/wine-test.sh
