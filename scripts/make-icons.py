#!/usr/bin/env python3
"""Draws the tray/app icons (no image library needed): a rounded square in the state's colour
with a white "¥"-like bar mark. Writes PNGs for Tauri and an ICO (PNG-in-ICO) for Windows."""
import struct, zlib, os, sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src-tauri", "icons")
STATES = {"icon": (0x1A, 0x7F, 0x37), "ready": (0x1A, 0x7F, 0x37), "busy": (0x1E, 0x63, 0xC9), "attention": (0xD9, 0x3F, 0x0B)}

def png(size, rgb):
    r0 = size * 0.2
    rows = []
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            # rounded square
            dx = max(r0 - x, 0, x - (size - 1 - r0)); dy = max(r0 - y, 0, y - (size - 1 - r0))
            inside = dx * dx + dy * dy <= r0 * r0
            u, v = x / size, y / size
            mark = (0.3 < u < 0.7 and 0.42 < v < 0.5) or (0.3 < u < 0.7 and 0.58 < v < 0.66) or \
                   (0.46 < u < 0.54 and 0.42 < v < 0.85) or (abs((u - 0.5) - (0.42 - v) * 0.9) < 0.05 and 0.15 < v < 0.42 and u > 0.28 and u < 0.72) or \
                   (abs((0.5 - u) - (0.42 - v) * 0.9) < 0.05 and 0.15 < v < 0.42 and u > 0.28 and u < 0.72)
            if not inside:
                row += bytes([0, 0, 0, 0])
            elif mark:
                row += bytes([255, 255, 255, 255])
            else:
                row += bytes([rgb[0], rgb[1], rgb[2], 255])
        rows.append(bytes(row))
    raw = b"".join(rows)
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")

def ico(pngs):
    head = struct.pack("<HHH", 0, 1, len(pngs))
    off = 6 + 16 * len(pngs)
    entries, data = b"", b""
    for size, p in pngs:
        entries += struct.pack("<BBBBHHII", size % 256, size % 256, 0, 0, 1, 32, len(p), off + len(data))
        data += p
    return head + entries + data

os.makedirs(OUT, exist_ok=True)
for name, rgb in STATES.items():
    open(os.path.join(OUT, f"{name}.png"), "wb").write(png(64 if name != "icon" else 256, rgb))
for s in (32, 128):
    open(os.path.join(OUT, f"{s}x{s}.png"), "wb").write(png(s, STATES["icon"]))
open(os.path.join(OUT, "icon.ico"), "wb").write(ico([(s, png(s, STATES["icon"])) for s in (16, 32, 48, 256)]))
print("icons written to", os.path.normpath(OUT))
