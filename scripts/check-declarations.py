#!/usr/bin/python3
"""The HIS samples that cannot run here (PowerBuilder, Delphi, VB6) and the C# one: every
function they declare from hisbridge_client.dll is one the DLL exports (crates/client/
hisbridge_client.def), declared by its exact name, and the 32-bit ones as __stdcall."""
import re
import sys

top = __file__.rsplit("/", 2)[0]
exports = set(re.findall(r"^\s+(\w+)@\d+", open(top + "/crates/client/hisbridge_client.def").read(), re.M))
checks = {
    "clients/pb/hisbridge.sru": r'FUNCTION long (\w+)\([^\n]*LIBRARY "hisbridge_client.dll" ALIAS FOR "(\w+);Ansi"',
    "clients/delphi/HisBridge.pas": r"function (\w+)\((?:[^;]|;(?!\s*stdcall))*\)\s*:\s*\w+;\s*stdcall; external HisBridgeDll",
    "clients/vb6/HisBridge.bas": r'Declare Function (\w+) Lib "hisbridge_client.dll"',
    "clients/csharp/Pay.cs": r"CallingConvention\.StdCall\)\]\s*public static extern \w+ (\w+)\(",
}
bad = 0
for path, pattern in checks.items():
    before = bad
    text = open(top + "/" + path, encoding="utf-8").read()
    found = re.findall(pattern, text, re.S)
    names = [f if isinstance(f, str) else f[0] for f in found]
    if isinstance(found[0] if found else "", tuple):
        for decl, alias in found:
            if decl != alias:
                print(f"{path}: {decl} is declared with the alias {alias}")
                bad = 1
    if not names:
        print(f"{path}: no declarations found")
        bad = 1
    for n in names:
        if n not in exports:
            print(f"{path}: {n} is not exported by hisbridge_client.dll")
            bad = 1
    if bad == before:
        print(f"{path}: {len(names)} declarations, all exported by hisbridge_client.dll")
sys.exit(bad)
