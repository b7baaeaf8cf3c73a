#!/usr/bin/env python3
"""Draws the tray/app icons (no image library needed). The app icon: a rounded square with a white
"¥"-like mark. The tray's state icons differ by shape as well as colour (they must read in
greyscale and to a colour-blind cashier): ready = a circle with a check mark, busy = a rounded
square with three dots, paused = a rounded square with two bars, attention = a triangle with "!".
Writes PNGs for Tauri and an ICO (PNG-in-ICO) for Windows."""
import struct, zlib, os, sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src-tauri", "icons")
STATES = {"icon": (0x1A, 0x7F, 0x37), "ready": (0x1A, 0x7F, 0x37), "busy": (0x1E, 0x63, 0xC9), "attention": (0xD9, 0x3F, 0x0B)}

def encode(size, rows):
    """RGBA rows (each starting with its filter byte) as a PNG file."""
    raw = b"".join(rows)
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")

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
    return encode(size, rows)

def ico(pngs):
    head = struct.pack("<HHH", 0, 1, len(pngs))
    off = 6 + 16 * len(pngs)
    entries, data = b"", b""
    for size, p in pngs:
        entries += struct.pack("<BBBBHHII", size % 256, size % 256, 0, 0, 1, 32, len(p), off + len(data))
        data += p
    return head + entries + data

def seg_dist(px, py, ax, ay, bx, by):
    vx, vy, wx, wy = bx - ax, by - ay, px - ax, py - ay
    t = max(0.0, min(1.0, (wx * vx + wy * vy) / (vx * vx + vy * vy)))
    dx, dy = px - (ax + t * vx), py - (ay + t * vy)
    return (dx * dx + dy * dy) ** 0.5

def state_png(size, name):
    """One tray icon: shape and mark by state, 4x4 supersampled edges."""
    colour = {"ready": (0x1A, 0x7F, 0x37), "busy": (0x1E, 0x63, 0xC9), "paused": (0x8A, 0x5A, 0x00), "attention": (0xC6, 0x28, 0x28)}[name]
    def shape(u, v):
        if name == "ready":
            return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.47 ** 2
        if name == "attention":
            # a triangle pointing up
            return 0.08 <= v <= 0.92 and abs(u - 0.5) <= (v - 0.06) * 0.55
        r0 = 0.2
        dx = max(r0 - u, 0, u - (1 - r0)); dy = max(r0 - v, 0, v - (1 - r0))
        return dx * dx + dy * dy <= r0 * r0
    def mark(u, v):
        if name == "ready":
            return min(seg_dist(u, v, 0.27, 0.52, 0.43, 0.68), seg_dist(u, v, 0.43, 0.68, 0.74, 0.34)) < 0.07
        if name == "busy":
            return any((u - cx) ** 2 + (v - 0.5) ** 2 < 0.085 ** 2 for cx in (0.25, 0.5, 0.75))
        if name == "paused":
            return 0.3 < v < 0.7 and (0.3 < u < 0.43 or 0.57 < u < 0.7)
        return (0.455 < u < 0.545 and 0.34 < v < 0.67) or (u - 0.5) ** 2 + (v - 0.78) ** 2 < 0.055 ** 2
    rows = []
    n = 4
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            cov = white = 0
            for sy in range(n):
                for sx in range(n):
                    u, v = (x + (sx + 0.5) / n) / size, (y + (sy + 0.5) / n) / size
                    if shape(u, v):
                        cov += 1
                        white += mark(u, v)
            if cov == 0:
                row += bytes([0, 0, 0, 0])
                continue
            f = white / cov
            px = [round(colour[i] * (1 - f) + 255 * f) for i in range(3)]
            row += bytes(px + [round(255 * cov / (n * n))])
        rows.append(bytes(row))
    return encode(size, rows)

os.makedirs(OUT, exist_ok=True)
open(os.path.join(OUT, "icon.png"), "wb").write(png(256, STATES["icon"]))
for name in ("ready", "busy", "paused", "attention"):
    open(os.path.join(OUT, f"{name}.png"), "wb").write(state_png(64, name))
for s in (32, 128):
    open(os.path.join(OUT, f"{s}x{s}.png"), "wb").write(png(s, STATES["icon"]))
open(os.path.join(OUT, "icon.ico"), "wb").write(ico([(s, png(s, STATES["icon"])) for s in (16, 32, 48, 256)]))
print("icons written to", os.path.normpath(OUT))
