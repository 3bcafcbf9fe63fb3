#!/usr/bin/env python3
"""Drive the tern bare-metal image's UART under qemu-system-aarch64 from a script.

Starts QEMU with the serial port on pipes, waits for the image's `> ` prompt before sending each
input line (the PL011 set-up drops bytes that arrive earlier, TOOLCHAIN.md 2.4), waits for the next
prompt after each line, and at end of input sends ^D, which makes a `qemu-exit` image leave QEMU
through semihosting with status 0. Guest output is copied to stdout as it arrives (CR removed).

Exit status: QEMU's (the guest's semihosting code), or 124 if a timeout fired (QEMU is killed).

usage: serial.py [--boot-timeout S] [--line-timeout S] [--exit-timeout S] [--raw] -- QEMU ARGS...
Input lines come from stdin.
"""
import argparse
import os
import subprocess
import sys
import threading
import time

PROMPT = b"\n> "


class Guest:
    def __init__(self, cmd, raw):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self.buf = bytearray()
        self.cond = threading.Condition()
        self.raw = raw
        self.eof = False
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        out = sys.stdout.buffer
        while True:
            chunk = self.proc.stdout.read1(4096) if hasattr(self.proc.stdout, "read1") else os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                with self.cond:
                    self.eof = True
                    self.cond.notify_all()
                return
            out.write(chunk if self.raw else chunk.replace(b"\r", b""))
            out.flush()
            with self.cond:
                self.buf += chunk
                self.cond.notify_all()

    def wait_prompt(self, timeout):
        """Waits until the output ends with a fresh prompt; consumes it. False on timeout/exit."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                text = self.buf.replace(b"\r", b"")
                if text.endswith(PROMPT) or text == b"> ":
                    self.buf.clear()
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    return False
                self.cond.wait(left)

    def send(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def main():
    ap = argparse.ArgumentParser(description="drive the tern bare-metal UART under QEMU")
    ap.add_argument("--boot-timeout", type=float, default=30)
    ap.add_argument("--line-timeout", type=float, default=120)
    ap.add_argument("--exit-timeout", type=float, default=10)
    ap.add_argument("--raw", action="store_true", help="keep CR bytes in the output")
    ap.add_argument("qemu", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.qemu[1:] if args.qemu[:1] == ["--"] else args.qemu
    if not cmd:
        ap.error("no QEMU command line")

    g = Guest(cmd, args.raw)
    if not g.wait_prompt(args.boot_timeout):
        print(f"\nserial.py: no prompt within {args.boot_timeout:.0f} s of boot", file=sys.stderr)
        g.kill()
        return 124
    for line in sys.stdin.buffer:
        line = line.rstrip(b"\r\n")
        g.send(line + b"\n")
        if not g.wait_prompt(args.line_timeout):
            print(f"\nserial.py: no prompt within {args.line_timeout:.0f} s after a line", file=sys.stderr)
            g.kill()
            return 124
    g.send(b"\x04")
    try:
        rc = g.proc.wait(timeout=args.exit_timeout)
    except subprocess.TimeoutExpired:
        print(f"\nserial.py: QEMU still running {args.exit_timeout:.0f} s after ^D "
              "(image without the qemu-exit feature?)", file=sys.stderr)
        g.kill()
        return 124
    g.thread.join(timeout=2)
    return rc


if __name__ == "__main__":
    sys.exit(main())
