#!/usr/bin/python3
"""A smart POS on USB, emulated in user space with umockdev for tests of the raw USB transport.

The bridge under test runs with libumockdev-preload and talks to this device through the real
libusb usbdevfs code: control transfers for string descriptors, interface claim (with a kernel
driver to detach first), bulk OUT and bulk IN URBs, discard on time-out, ENODEV after unplug.
The bytes of the bulk pair are carried to and from a pseudo-terminal where the POS simulator
(`hisbridge sim-pos`) answers, so the payment logic is the simulator's and only the cable is
emulated.

With `--mode aoa` the device is an Android POS: in its normal mode (MTP and ADB interfaces) it
answers the Android Open Accessory requests (GET_PROTOCOL with `--aoa-version`, SEND_STRING,
START); after START it leaves the bus and comes back as Google's accessory 18d1:2d01 with the
same serial number, whose first interface carries the bulk pair. The emulated POS app opens the
accessory only when the identification strings match its accessory filter (`--filter-*`), as
Android does; commands `app-close` and `reboot` make the accessory disappear and the device come
back in its normal mode, as an app closing its accessory or a POS restarting does.

With `--mode acm` the device is a CDC-ACM POS instead: its tty (ttyACM0, then ttyACM1 after
being plugged again, as a renumbered COM port) appears in sysfs under the USB device, and its
device node leads to the simulator's pseudo-terminal, for the serial transport's lookup by USB
identity.

    pos-gadget.py --pty /dev/pts/N [--mode bulk|acm] [--vid 2fb8 --pid 0001 --serial SN --driver name]

It prints `UMOCKDEV_DIR=<testbed>` when the device is present, then reads commands on stdin:
`unplug`, `plug` (a new device number, as on a real bus), `quit`. Each command is answered with
`ok <command>` once done.
"""
import argparse
import errno
import os
import struct
import sys
import tty

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import GLib, UMockdev  # noqa: E402

# usbdevfs ioctl numbers by their number within type 'U' (linux/usbdevice_fs.h)
CONTROL, BULK, SETINTERFACE, SETCONFIGURATION, GETDRIVER = 0, 2, 4, 5, 8
SUBMITURB, DISCARDURB, REAPURB, REAPURBNDELAY = 10, 11, 12, 13
CLAIMINTERFACE, RELEASEINTERFACE, CONNECTINFO, IOCTL = 15, 16, 17, 18
RESET, CLEAR_HALT, DISCONNECT, CONNECT, GET_CAPABILITIES, DISCONNECT_CLAIM = 20, 21, 22, 23, 26, 27
URB_TYPE_CONTROL, URB_TYPE_BULK = 2, 3
DEBUG = bool(os.environ.get("POS_GADGET_DEBUG"))
URB_SIZE = 56  # struct usbdevfs_urb on 64-bit Linux
EP_IN, EP_OUT, MAX_PACKET = 0x81, 0x01, 512
AOA_GET_PROTOCOL, AOA_SEND_STRING, AOA_START = 51, 52, 53
ACCESSORY_VID, ACCESSORY_PID = 0x18D1, 0x2D01  # accessory + ADB


def endpoint(address, attributes, max_packet, interval=0):
    return struct.pack("<BBBBHB", 7, 5, address, attributes, max_packet, interval)


def descriptors(vid, pid, mode, accessory=False):
    device = struct.pack("<BBHBBBBHHHBBBB", 18, 1, 0x0200, 0, 0, 0, 64, vid, pid, 0x0100, 1, 2, 3, 1)
    adb = bytes([9, 4, 1, 0, 2, 0xFF, 0x42, 0x01, 0]) + endpoint(0x82, 2, MAX_PACKET) + endpoint(0x02, 2, MAX_PACKET)
    if mode == "aoa" and accessory:
        body = bytes([9, 4, 0, 0, 2, 0xFF, 0xFF, 0, 0]) + endpoint(EP_IN, 2, MAX_PACKET) + endpoint(EP_OUT, 2, MAX_PACKET) + adb
        n_ifaces = 2
    elif mode == "aoa":
        # MTP (still image class) with its event endpoint, and ADB.
        body = (bytes([9, 4, 0, 0, 3, 0x06, 0x01, 0x01, 0]) + endpoint(EP_IN, 2, MAX_PACKET)
                + endpoint(EP_OUT, 2, MAX_PACKET) + endpoint(0x83, 3, 28, 6) + adb)
        n_ifaces = 2
    elif mode == "acm":
        body = (bytes([9, 4, 0, 0, 1, 0x02, 0x02, 0x01, 0])  # CDC control: interrupt IN
                + bytes([5, 0x24, 0x00, 0x10, 0x01])  # CDC header functional descriptor
                + endpoint(0x83, 3, 16, 10)
                + bytes([9, 4, 1, 0, 2, 0x0A, 0, 0, 0])  # CDC data: bulk pair
                + endpoint(0x82, 2, MAX_PACKET) + endpoint(0x02, 2, MAX_PACKET))
        n_ifaces = 2
    else:
        body = bytes([9, 4, 0, 0, 2, 0xFF, 0, 0, 0]) + endpoint(EP_IN, 2, MAX_PACKET) + endpoint(EP_OUT, 2, MAX_PACKET)
        n_ifaces = 1
    config = struct.pack("<BBHBBBBB", 9, 2, 9 + len(body), n_ifaces, 1, 0, 0x80, 50)
    return device + config + body


def string_descriptor(text):
    raw = text.encode("utf-16-le")
    return bytes([2 + len(raw), 3]) + raw


class Gadget:
    def __init__(self, args):
        self.args = args
        self.testbed = UMockdev.Testbed.new()
        self.strings = {1: args.manufacturer, 2: args.product, 3: args.serial}
        self.devnum = 1
        self.present = False
        self.syspath = None
        self.devnode = None
        self.handler = None
        self.pending_in = []  # submitted IN URBs: (urb, buffer, length)
        self.completed = {}  # URBs ready to be reaped, by plug-in generation
        self.from_pos = bytearray()  # bytes from the simulator not yet taken by an IN URB
        self.driver = args.driver
        self.claimed = set()
        self.plugs = 0
        self.tty = None
        self.children = []
        self.gen = 0
        self.handlers = []  # never detached: a program may still hold an fd of an old node
        self.acm = None  # (master, slave, watch) of the tty's pty while plugged in (acm mode)
        self.accessory = False  # aoa mode: in accessory mode now
        self.aoa_strings = {}  # SEND_STRING index -> text, as last written by the host
        self.app_open = False  # aoa mode: the POS app opened the accessory (its filter matched)
        self.switches = 0
        self.pty = os.open(args.pty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        GLib.io_add_watch(self.pty, GLib.PRIORITY_DEFAULT, GLib.IO_IN, self.on_pty)
        GLib.io_add_watch(sys.stdin.fileno(), GLib.PRIORITY_DEFAULT, GLib.IO_IN | GLib.IO_HUP, self.on_stdin)

    # -- the bus ---------------------------------------------------------------------------
    def ids(self):
        if self.accessory:
            return ACCESSORY_VID, ACCESSORY_PID
        return int(self.args.vid, 16), int(self.args.pid, 16)

    def plug(self):
        self.devnum += 1
        self.devnode = "/dev/bus/usb/001/%03d" % self.devnum
        vid, pid = self.ids()
        self.syspath = self.testbed.add_device(
            "usb", "usb1/1-1", None,
            ["idVendor", "%04x" % vid, "idProduct", "%04x" % pid, "serial", self.args.serial,
             "manufacturer", self.args.manufacturer, "product", self.args.product,
             "busnum", "1", "devnum", str(self.devnum), "speed", "480", "bConfigurationValue", "1",
             "dev", "189:%d" % self.devnum],
            ["DEVNAME", self.devnode, "DEVTYPE", "usb_device", "SUBSYSTEM", "usb",
             "BUSNUM", "001", "DEVNUM", "%03d" % self.devnum, "PRODUCT", "%x/%x/100" % (vid, pid)])
        self.testbed.set_attribute_binary(self.syspath, "descriptors",
                                          descriptors(vid, pid, self.args.mode, self.accessory))
        if self.accessory:
            s = self.aoa_strings
            f = self.args
            self.app_open = (s.get(0) == f.filter_manufacturer and s.get(1) == f.filter_model
                             and s.get(3) == f.filter_version)
        # add_device() records the node in sysfs only; libusb also lists /dev/bus/usb.
        node = self.testbed.get_root_dir() + self.devnode
        os.makedirs(os.path.dirname(node), exist_ok=True)
        open(node, "wb").close()
        self.gen += 1
        handler = UMockdev.IoctlBase()
        handler.connect("handle-ioctl", self.on_ioctl, self.gen)
        self.testbed.attach_ioctl(self.devnode, handler)
        self.handlers.append(handler)
        self.driver = self.args.driver
        self.claimed.clear()
        if self.args.mode == "acm":
            self.add_tty()
        self.plugs += 1
        self.present = True

    def add_tty(self):
        # The kernel's cdc_acm binds the data interface and makes a tty; each plug-in after the
        # first gets the next number, as Windows may give a POS another COM port.
        # Children are named by their path under /sys/devices: add_device() checks a parent in
        # the real /sys, which this process does not see through the preload.
        iface = self.testbed.add_device(
            "usb", "usb1/1-1/1-1:1.0", None,
            ["bInterfaceNumber", "00", "bInterfaceClass", "02", "bInterfaceSubClass", "02",
             "bInterfaceProtocol", "01"],
            ["DEVTYPE", "usb_interface", "SUBSYSTEM", "usb", "INTERFACE", "2/2/1"])
        self.tty = "ttyACM%d" % self.plugs
        tty_path = self.testbed.add_device("tty", "usb1/1-1/1-1:1.0/tty/" + self.tty, None, [],
                                           ["DEVNAME", "/dev/" + self.tty, "SUBSYSTEM", "tty"])
        self.children = [tty_path, iface]
        # sysfs links a tty to the device it belongs to; umockdev leaves that link out.
        os.symlink("../../../1-1:1.0", self.testbed.get_root_dir() + tty_path + "/device")
        # The tty is a pty of its own, carried to the simulator's: unplugging closes it, and
        # the program holding it sees the hang-up a real unplug gives.
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        watch = GLib.io_add_watch(master, GLib.PRIORITY_DEFAULT, GLib.IO_IN, self.on_acm)
        self.acm = (master, slave, watch)
        os.symlink(os.ttyname(slave), self.testbed.get_root_dir() + "/dev/" + self.tty)
        # Terminal ioctls (termios, TIOCEXCL) go to the real pty.
        handler = UMockdev.IoctlBase()
        handler.connect("handle-ioctl", self.on_tty_ioctl)
        self.testbed.attach_ioctl("/dev/" + self.tty, handler)
        self.handlers.append(handler)

    def on_tty_ioctl(self, handler, client):
        res, err = client.execute()
        client.complete(res, err)
        return True

    def unplug(self):
        self.present = False
        self.app_open = False
        if self.acm:
            master, slave, watch = self.acm
            GLib.source_remove(watch)
            os.close(master)
            os.close(slave)
            self.acm = None
        for child in self.children:
            self.testbed.remove_device(child)
        self.children = []
        self.testbed.remove_device(self.syspath)
        # remove_device() takes the nodes it knows; ours may already be gone.
        for node in [self.devnode] + (["/dev/" + self.tty] if self.tty else []):
            try:
                os.unlink(self.testbed.get_root_dir() + node)
            except FileNotFoundError:
                pass
        self.tty = None
        # URBs in flight end with ENODEV, as the kernel's do on disconnect.
        for urb, _buf, _n in self.pending_in:
            self.finish(urb, -errno.ENODEV, 0)
        self.pending_in.clear()
        self.from_pos.clear()

    # -- usbdevfs ----------------------------------------------------------------------------
    def finish(self, urb, status, actual):
        urb.update(4, struct.pack("<i", status))
        urb.update(28, struct.pack("<i", actual))
        self.completed.setdefault(self.gen, []).append(urb)

    def reap(self, client, arg, gen):
        done = self.completed.get(gen)
        if done:
            arg.resolve(0, 8).set_ptr(0, done.pop(0))
            client.complete(0, 0)
        elif not self.present or gen != self.gen:
            client.complete(-1, errno.ENODEV)
        else:
            client.complete(-1, errno.EAGAIN)

    def on_ioctl(self, handler, client, gen):
        request = client.get_request()
        nr, typ = request & 0xFF, (request >> 8) & 0xFF
        if DEBUG:
            print("ioctl gen %d/%d nr %d present %s" % (gen, self.gen, nr, self.present), file=sys.stderr, flush=True)
        arg = client.get_arg()
        if typ != ord("U"):
            client.complete(-1, errno.ENOTTY)
            return True
        if nr in (REAPURB, REAPURBNDELAY):
            # As the kernel does: URBs in flight at unplug are still reaped (status ENODEV).
            self.reap(client, arg, gen)
            return True
        if not self.present or gen != self.gen:
            client.complete(-1, errno.ENODEV)
            return True
        if nr == GET_CAPABILITIES:
            arg.resolve(0, 4).update(0, struct.pack("<I", 0))
            client.complete(0, 0)
        elif nr == GETDRIVER:
            # struct usbdevfs_getdriver { unsigned int interface; char driver[256]; }
            d = arg.resolve(0, 260)
            if self.driver:
                d.update(4, self.driver.encode() + b"\0")
                client.complete(0, 0)
            else:
                client.complete(-1, errno.ENODATA)
        elif nr == IOCTL:
            # struct usbdevfs_ioctl { int ifno; int ioctl_code; void *data; }
            d = arg.resolve(0, 16)
            _ifno, code = struct.unpack_from("<ii", bytes(d.retrieve()))
            if code & 0xFF == DISCONNECT and self.driver:
                self.driver = None
                client.complete(0, 0)
            elif code & 0xFF == DISCONNECT:
                client.complete(-1, errno.ENODATA)
            elif code & 0xFF == CONNECT:
                self.driver = self.args.driver
                client.complete(0, 0)
            else:
                client.complete(-1, errno.ENOTTY)
        elif nr == CLAIMINTERFACE:
            ifno = struct.unpack("<I", bytes(arg.resolve(0, 4).retrieve()))[0]
            if self.driver:
                client.complete(-1, errno.EBUSY)
            else:
                self.claimed.add(ifno)
                client.complete(0, 0)
        elif nr == RELEASEINTERFACE:
            ifno = struct.unpack("<I", bytes(arg.resolve(0, 4).retrieve()))[0]
            self.claimed.discard(ifno)
            client.complete(0, 0)
        elif nr in (SETINTERFACE, SETCONFIGURATION, CLEAR_HALT, RESET):
            client.complete(0, 0)
        elif nr == CONNECTINFO:
            arg.resolve(0, 8).update(0, struct.pack("<II", self.devnum, 0))
            client.complete(0, 0)
        elif nr == SUBMITURB:
            self.submit(client, arg)
        elif nr == DISCARDURB:
            addr = struct.unpack("<Q", bytes(arg.retrieve())[:8])[0]
            for i, (urb, _buf, _n) in enumerate(self.pending_in):
                if urb.client_addr == addr:
                    del self.pending_in[i]
                    self.finish(urb, -errno.ENOENT, 0)
                    client.complete(0, 0)
                    break
            else:
                client.complete(-1, errno.EINVAL)
        else:
            client.complete(-1, errno.ENOTTY)
        return True

    def submit(self, client, arg):
        urb = arg.resolve(0, URB_SIZE)
        raw = bytes(urb.retrieve())
        typ, ep = raw[0], raw[1]
        length = struct.unpack_from("<i", raw, 24)[0]
        buf = urb.resolve(16, length) if length > 0 else None
        if typ == URB_TYPE_CONTROL:
            setup = bytes(buf.retrieve()[:8])
            rtype, req, value, index, wlen = struct.unpack("<BBHHH", setup)
            answer = None
            if rtype == 0x80 and req == 6 and value >> 8 == 3:
                i = value & 0xFF
                answer = bytes([4, 3, 0x09, 0x04]) if i == 0 else string_descriptor(self.strings.get(i, ""))
            elif rtype == 0x80 and req == 6 and value >> 8 == 1:
                vid, pid = self.ids()
                answer = descriptors(vid, pid, self.args.mode, self.accessory)[:18]
            elif self.args.mode == "aoa" and not self.accessory and rtype == 0xC0 and req == AOA_GET_PROTOCOL:
                answer = struct.pack("<H", self.args.aoa_version)
            elif (self.args.mode == "aoa" and not self.accessory and self.args.aoa_version
                  and rtype == 0x40 and req == AOA_SEND_STRING):
                data = bytes(buf.retrieve()[8:8 + wlen])
                self.aoa_strings[index] = data.split(b"\0")[0].decode("utf-8", "replace")
                client.complete(0, 0)
                self.finish(urb, 0, wlen)
                return
            elif self.args.mode == "aoa" and not self.accessory and self.args.aoa_version and rtype == 0x40 and req == AOA_START:
                client.complete(0, 0)
                self.finish(urb, 0, 0)
                # The device drops off the bus and comes back as the accessory.
                GLib.timeout_add(150, self.become_accessory)
                return
            if answer is None:
                client.complete(0, 0)
                self.finish(urb, -errno.EPIPE, 0)  # stall
                return
            answer = answer[:wlen]
            buf.update(8, answer)
            client.complete(0, 0)
            self.finish(urb, 0, len(answer))
        elif typ == URB_TYPE_BULK and ep == EP_OUT and self.claimed and self.carries():
            data = bytes(buf.retrieve()) if buf else b""
            if self.args.mode == "bulk" or self.app_open:
                os.write(self.pty, data)
            client.complete(0, 0)
            self.finish(urb, 0, len(data))
        elif typ == URB_TYPE_BULK and ep == EP_IN and self.claimed and self.carries():
            client.complete(0, 0)
            self.pending_in.append((urb, buf, length))
            self.deliver()
        else:
            client.complete(-1, errno.EINVAL)

    def carries(self):
        """Whether the bulk pair is the POS link now (always in bulk mode; the accessory's)."""
        return self.args.mode == "bulk" or (self.args.mode == "aoa" and self.accessory)

    def become_accessory(self):
        if self.present and not self.accessory:
            self.unplug()
            self.accessory = True
            self.switches += 1
            self.plug()
        return False

    def back_to_normal(self):
        """The accessory goes away and the device comes back in its normal mode."""
        if self.present:
            self.unplug()
        self.accessory = False
        self.plug()

    def deliver(self):
        while self.pending_in and self.from_pos:
            urb, buf, length = self.pending_in.pop(0)
            chunk = bytes(self.from_pos[:length])
            del self.from_pos[:length]
            buf.update(0, chunk)
            self.finish(urb, 0, len(chunk))

    # -- the other ends ----------------------------------------------------------------------
    def on_pty(self, fd, _cond):
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if self.present and (self.args.mode == "bulk" or self.app_open):
            self.from_pos += data
            self.deliver()
        elif self.present and self.acm:
            os.write(self.acm[0], data)
        return True

    def on_acm(self, fd, _cond):
        try:
            data = os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return True  # nobody has the tty open yet
        os.write(self.pty, data)
        return True

    def on_stdin(self, fd, cond):
        line = sys.stdin.readline()
        cmd = line.strip()
        if not line or cmd == "quit":
            self.loop.quit()
            return False
        if cmd == "unplug" and self.present:
            self.unplug()
        elif cmd == "plug" and not self.present:
            # Plugged in again, an Android device starts in its normal mode.
            self.accessory = False
            self.plug()
        elif cmd in ("app-close", "reboot"):
            self.back_to_normal()
        elif cmd == "status":
            print("claimed", ",".join(str(i) for i in sorted(self.claimed)) or "-", "driver", self.driver or "-",
                  "tty", self.tty or "-", flush=True)
            if self.args.mode == "aoa":
                print("mode", "accessory" if self.accessory else "normal", "app", "open" if self.app_open else "-",
                      "switches", self.switches, flush=True)
                for i in sorted(self.aoa_strings):
                    print("string %d %s" % (i, self.aoa_strings[i]), flush=True)
        print("ok", cmd, flush=True)
        return True

    def run(self):
        self.plug()
        print("UMOCKDEV_DIR=" + self.testbed.get_root_dir(), flush=True)
        self.loop = GLib.MainLoop()
        self.loop.run()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pty", required=True, help="pseudo-terminal of the POS simulator")
    p.add_argument("--mode", choices=["bulk", "acm", "aoa"], default="bulk")
    p.add_argument("--vid", default="2fb8")
    p.add_argument("--pid", default="0001")
    p.add_argument("--serial", default="N5-0001")
    p.add_argument("--manufacturer", default="HIS Bridge Test")
    p.add_argument("--product", default="Smart POS (emulated)")
    p.add_argument("--driver", default="", help="a kernel driver bound at plug-in, to be detached")
    p.add_argument("--aoa-version", type=int, default=2, help="aoa mode: the GET_PROTOCOL answer (0: no AOA)")
    p.add_argument("--filter-manufacturer", default="HIS Bridge", help="aoa mode: the POS app's accessory filter")
    p.add_argument("--filter-model", default="POS Link")
    p.add_argument("--filter-version", default="1")
    Gadget(p.parse_args()).run()


if __name__ == "__main__":
    main()
