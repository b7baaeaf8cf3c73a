#!/usr/bin/python3
"""A null-modem cable between two pseudo-terminals, for a POS app that opens a device path.

    pty-pair.py LINK_A LINK_B

Makes two pseudo-terminals in raw mode, links LINK_A and LINK_B to them, and carries bytes
between them until killed. It holds both terminals open itself, so either side may close and
open its end again (a POS app restarting) without the other seeing a hang-up.
"""
import os
import select
import sys
import tty


def main():
    links = sys.argv[1:3]
    if len(links) != 2:
        sys.exit(__doc__)
    ends = []
    for link in links:
        master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        try:
            os.unlink(link)
        except FileNotFoundError:
            pass
        os.symlink(os.ttyname(slave), link)
        ends.append((master, slave))
    print("ready", flush=True)
    a, b = ends[0][0], ends[1][0]
    other = {a: b, b: a}
    while True:
        ready, _, _ = select.select([a, b], [], [])
        for fd in ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                continue
            if data:
                os.write(other[fd], data)


if __name__ == "__main__":
    main()
