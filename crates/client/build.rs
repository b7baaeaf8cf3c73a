//! Windows builds of `hisbridge_client.dll` (32-bit and 64-bit) get a version resource, so IT
//! and the HIS vendor can tell which one they have (Properties → Details in
//! Explorer). Elsewhere this does nothing.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows")
        || std::env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("gnu")
    {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let version = std::env::var("CARGO_PKG_VERSION").expect("version");
    let bits = if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86") { "32" } else { "64" };
    let mut parts: Vec<u16> = version.split(['.', '-', '+']).filter_map(|p| p.parse().ok()).take(3).collect();
    parts.resize(4, 0);
    let comma = parts.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",");
    let rc = format!(
        r#"#include <winver.h>
1 VERSIONINFO
FILEVERSION {comma}
PRODUCTVERSION {comma}
FILEOS VOS_NT_WINDOWS32
FILETYPE VFT_DLL
BEGIN
  BLOCK "StringFileInfo"
  BEGIN
    BLOCK "080404B0"
    BEGIN
      VALUE "CompanyName", "HIS Bridge"
      VALUE "FileDescription", "HIS Bridge HIS client library ({bits}-bit)"
      VALUE "FileVersion", "{version}"
      VALUE "InternalName", "hisbridge_client"
      VALUE "OriginalFilename", "hisbridge_client.dll"
      VALUE "ProductName", "HIS Bridge"
      VALUE "ProductVersion", "{version}"
    END
  END
  BLOCK "VarFileInfo"
  BEGIN
    VALUE "Translation", 0x0804, 1200
  END
END
"#
    );
    let rc_path = out.join("hisbridge_client.rc");
    std::fs::write(&rc_path, rc).expect("write the resource script");
    let obj = out.join("hisbridge_client-res.o");
    let default = if bits == "32" { "i686-w64-mingw32-windres" } else { "x86_64-w64-mingw32-windres" };
    let windres = std::env::var("WINDRES").unwrap_or_else(|_| default.into());
    let status = std::process::Command::new(&windres)
        .arg("-O")
        .arg("coff")
        .arg("-o")
        .arg(&obj)
        .arg(&rc_path)
        .status()
        .unwrap_or_else(|e| panic!("{windres}: {e} (install mingw-w64 or set WINDRES)"));
    assert!(status.success(), "{windres} failed on {}", rc_path.display());
    println!("cargo:rustc-cdylib-link-arg={}", obj.display());
}
