#!/usr/bin/env python3
"""Write a minimal flattened device tree (DTB) for booting the tern bare-metal image under
qemu-system-aarch64 -M raspi3b/raspi4b.

QEMU's raspi machines have no built-in device tree. Given `-dtb FILE`, QEMU fills in /memory `reg`
and /chosen `linux,initrd-start`/`-end` (for `-initrd`) and passes the address in x0, which is
exactly what the Pi firmware does with `initramfs FILE followkernel`. So the image discovers the
model the same way on both. The tree holds only what that needs: /model, /compatible, /memory,
/chosen. No dtc needed; the format is the devicetree specification v0.4, chapter 5.

usage: mkdtb.py --board rpi3b|rpi4b OUT.dtb
"""
import argparse
import struct
import sys

BOARDS = {
    # model strings as the real firmware's DTBs have them; QEMU 10's raspi4b is a "revision 1.5".
    "rpi3b": ("Raspberry Pi 3 Model B Rev 1.2", ["raspberrypi,3-model-b", "brcm,bcm2837"], 0x3C000000),
    "rpi4b": ("Raspberry Pi 4 Model B Rev 1.5", ["raspberrypi,4-model-b", "brcm,bcm2711"], 0x3C000000),
}

FDT_BEGIN_NODE, FDT_END_NODE, FDT_PROP, FDT_END = 1, 2, 3, 9


class Writer:
    def __init__(self):
        self.structs = bytearray()
        self.strings = bytearray()
        self.names = {}

    def _pad(self):
        while len(self.structs) % 4:
            self.structs.append(0)

    def begin(self, name):
        self.structs += struct.pack(">I", FDT_BEGIN_NODE) + name.encode() + b"\0"
        self._pad()

    def end(self):
        self.structs += struct.pack(">I", FDT_END_NODE)

    def prop(self, name, value: bytes):
        if name not in self.names:
            self.names[name] = len(self.strings)
            self.strings += name.encode() + b"\0"
        self.structs += struct.pack(">III", FDT_PROP, len(value), self.names[name]) + value
        self._pad()

    def blob(self):
        self.structs += struct.pack(">I", FDT_END)
        header_len = 40
        rsvmap = struct.pack(">QQ", 0, 0)  # empty memory reservation map
        off_rsvmap = header_len
        off_struct = off_rsvmap + len(rsvmap)
        off_strings = off_struct + len(self.structs)
        total = off_strings + len(self.strings)
        # Leave room for QEMU to add properties (it edits the blob in place, growing it).
        total_padded = (total + 4096 + 7) & ~7
        header = struct.pack(">10I", 0xD00DFEED, total_padded, off_struct, off_strings, off_rsvmap,
                             17, 16, 0, len(self.strings), len(self.structs))
        out = header + rsvmap + bytes(self.structs) + bytes(self.strings)
        return out + bytes(total_padded - len(out))


def strlist(items):
    return b"".join(s.encode() + b"\0" for s in items)


def u32s(*vals):
    return b"".join(struct.pack(">I", v) for v in vals)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", choices=sorted(BOARDS), required=True)
    ap.add_argument("out")
    args = ap.parse_args()
    model, compatible, mem = BOARDS[args.board]
    w = Writer()
    w.begin("")
    w.prop("#address-cells", u32s(1))
    w.prop("#size-cells", u32s(1))
    w.prop("model", strlist([model]))
    w.prop("compatible", strlist(compatible))
    w.begin("chosen")
    w.end()
    w.begin("memory@0")
    w.prop("device_type", strlist(["memory"]))
    w.prop("reg", u32s(0, mem))
    w.end()
    w.end()
    with open(args.out, "wb") as f:
        f.write(w.blob())
    return 0


if __name__ == "__main__":
    sys.exit(main())
