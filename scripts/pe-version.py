#!/usr/bin/env python3
"""Prints a Windows executable's or DLL's file version (VS_FIXEDFILEINFO) as a.b.c.d, the form
the MSI File table's Version column takes. Exits 1 when the file has no version resource."""
import struct
import sys

data = open(sys.argv[1], "rb").read()
at = data.find(struct.pack("<I", 0xFEEF04BD))
if at < 0:
    sys.exit(f"{sys.argv[1]}: no version resource")
_sig, _struc, ms, ls = struct.unpack_from("<IIII", data, at)
print(f"{ms >> 16}.{ms & 0xFFFF}.{ls >> 16}.{ls & 0xFFFF}")
