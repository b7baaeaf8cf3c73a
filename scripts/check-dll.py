#!/usr/bin/python3
"""Checks a hisbridge_client.dll: its machine, its exports (the names of
crates/client/hisbridge_client.def, undecorated) and, for 32-bit, that each export is __stdcall
(it returns with `ret N`, popping its N bytes of arguments as the .def's @N says).

    check-dll.py DLL x86|x64
"""
import re
import subprocess
import sys


def main():
    dll, arch = sys.argv[1], sys.argv[2]
    prefix = "i686-w64-mingw32-" if arch == "x86" else "x86_64-w64-mingw32-"
    here = __file__.rsplit("/", 2)[0]
    want = {}
    for line in open(here + "/crates/client/hisbridge_client.def"):
        m = re.match(r"\s+(\w+)@(\d+)", line)
        if m:
            want[m.group(1)] = int(m.group(2))
    p = subprocess.run([prefix + "objdump", "-p", dll], capture_output=True, text=True, check=True).stdout
    machine = "PE32 " if arch == "x86" else "PE32+"
    fmt = subprocess.run(["file", dll], capture_output=True, text=True).stdout
    if machine not in fmt or ("80386" in fmt) != (arch == "x86"):
        sys.exit(f"{dll}: not a {arch} DLL: {fmt.strip()}")
    base = int(re.search(r"ImageBase\s+([0-9a-fA-F]+)", p).group(1), 16)
    rvas = [int(x, 16) for x in re.findall(r"\+base\[\s*\d+\]\s+([0-9a-f]+) Export RVA", p)]
    names = re.findall(r"^\s+\[\s*(\d+)\] (\S+)$", p.split("[Ordinal/Name Pointer] Table")[1], re.M)
    exported = {name: rvas[int(i)] for i, name in names}
    missing = sorted(set(want) - set(exported))
    if missing:
        sys.exit(f"{dll}: does not export {', '.join(missing)}")
    decorated = [n for n in exported if "@" in n or n.startswith("_")]
    if decorated:
        sys.exit(f"{dll}: decorated export names {decorated}")
    if arch == "x86":
        for name, size in sorted(want.items()):
            start = base + exported[name]
            d = subprocess.run([prefix + "objdump", "-d", f"--start-address={start:#x}",
                                f"--stop-address={start + 0x400:#x}", dll],
                               capture_output=True, text=True, check=True).stdout
            rets = re.findall(r"\tret\s*(\$0x[0-9a-f]+)?", d)
            if not rets:
                sys.exit(f"{dll}: no return found in {name}")
            pops = int(rets[0][1:], 16) if rets[0] else 0
            if pops != size:
                sys.exit(f"{dll}: {name} pops {pops} bytes, __stdcall with @{size} pops {size}")
    print(f"{dll}: {arch}, {len(want)} exports undecorated" + (", all __stdcall" if arch == "x86" else ""))


if __name__ == "__main__":
    main()
