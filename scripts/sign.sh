# Authenticode signatures for the Windows build (sourced by scripts/build-windows.sh and
# installer/build-msi.sh). With HISBRIDGE_SIGN_PFX (the hospital's or the vendor's code-signing
# certificate, a .pfx) and HISBRIDGE_SIGN_PASSWORD, files are signed with it, and timestamped
# when HISBRIDGE_SIGN_TIMESTAMP names a timestamp server (http://...). Without it, with a
# throwaway test certificate made here (target-windows/test-signing/), so that the build, the
# MSI and their checks are the same either way; Windows does not trust it.
#   sign FILE...       signs each file in place (exe, dll, msi)
#   verify FILE...     checks each signature (against the test certificate when it is the one used)
sign_dir="${CARGO_TARGET_DIR:-$top/target-windows}/test-signing"

sign_args() {
  if [ -n "${HISBRIDGE_SIGN_PFX:-}" ]; then
    echo "-pkcs12 $HISBRIDGE_SIGN_PFX -pass ${HISBRIDGE_SIGN_PASSWORD:-}"
    return
  fi
  if [ ! -f "$sign_dir/cert.pem" ]; then
    mkdir -p "$sign_dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout "$sign_dir/key.pem" -out "$sign_dir/cert.pem" \
      -subj "/CN=HIS Bridge test signing (not trusted)/O=HIS Bridge" \
      -addext "extendedKeyUsage=codeSigning" -addext "keyUsage=digitalSignature" 2>/dev/null
  fi
  echo "-certs $sign_dir/cert.pem -key $sign_dir/key.pem"
}

sign() {
  local f args
  # shellcheck disable=SC2046
  args=$(sign_args)
  for f in "$@"; do
    # A file signed by an earlier run (cargo left it as it was) is signed afresh.
    if osslsigncode remove-signature -in "$f" -out "$f.unsigned" > /dev/null 2>&1; then mv "$f.unsigned" "$f"; fi
    rm -f "$f.unsigned"
    # shellcheck disable=SC2086
    osslsigncode sign $args -h sha256 -n "HIS Bridge" -i "https://hisbridge.cn" \
      ${HISBRIDGE_SIGN_TIMESTAMP:+-t "$HISBRIDGE_SIGN_TIMESTAMP"} -in "$f" -out "$f.signed" > /dev/null
    mv "$f.signed" "$f"
  done
}

verify() {
  local f ca=()
  [ -z "${HISBRIDGE_SIGN_PFX:-}" ] && ca=(-CAfile "$sign_dir/cert.pem")
  for f in "$@"; do
    osslsigncode verify "${ca[@]}" -in "$f" > "$f.verify.log" 2>&1 || { echo "signature of $f:"; cat "$f.verify.log"; return 1; }
    rm -f "$f.verify.log"
  done
}
