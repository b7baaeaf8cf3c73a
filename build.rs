//! Windows builds of `hisbridge.exe` get a version resource and the icon (the tray app's come
//! from tauri-build). Elsewhere this does nothing.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src-tauri/icons/icon.ico");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows")
        || std::env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("gnu")
    {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let version = std::env::var("CARGO_PKG_VERSION").expect("version");
    let mut parts: Vec<u16> = version.split(['.', '-', '+']).filter_map(|p| p.parse().ok()).take(3).collect();
    parts.resize(4, 0);
    let comma = parts.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",");
    let icon = manifest.join("src-tauri/icons/icon.ico").display().to_string().replace('\\', "/");
    let rc = format!(
        r#"#include <winver.h>
1 ICON "{icon}"
1 VERSIONINFO
FILEVERSION {comma}
PRODUCTVERSION {comma}
FILEOS VOS_NT_WINDOWS32
FILETYPE VFT_APP
BEGIN
  BLOCK "StringFileInfo"
  BEGIN
    BLOCK "080404B0"
    BEGIN
      VALUE "CompanyName", "HIS Bridge"
      VALUE "FileDescription", "HIS Bridge command line and service"
      VALUE "FileVersion", "{version}"
      VALUE "InternalName", "hisbridge"
      VALUE "OriginalFilename", "hisbridge.exe"
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
    let rc_path = out.join("hisbridge.rc");
    std::fs::write(&rc_path, rc).expect("write the resource script");
    let obj = out.join("hisbridge-res.o");
    let windres = std::env::var("WINDRES").unwrap_or_else(|_| "x86_64-w64-mingw32-windres".into());
    let status = std::process::Command::new(&windres)
        .arg("-O")
        .arg("coff")
        .arg("-o")
        .arg(&obj)
        .arg(&rc_path)
        .status()
        .unwrap_or_else(|e| panic!("{windres}: {e} (install mingw-w64 or set WINDRES)"));
    assert!(status.success(), "{windres} failed on {}", rc_path.display());
    println!("cargo:rustc-link-arg-bin=hisbridge={}", obj.display());
}
