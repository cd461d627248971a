"""Big outputs whose multibyte characters straddle the daemon's read boundaries.

Run as a script (`python bigoutput.py CASE MARKER`) it writes case CASE, in writes of
the sizes listed; imported, `expected(CASE)` gives what it writes. No imports beyond
the standard library: it starts fast.

Boundaries in the daemon: 4 KiB (smallest read), 64 KiB (newline scan step), 256 KiB
(read step), 1 MiB (longest piece of a line on a stream), 4 KiB pipe-ish writes.
"""

from __future__ import annotations

import os
import random
import sys
import time

KIB = 1024
MIB = 1024 * 1024
EURO, E_ACUTE, HAN, GRIN, CLEF = "€".encode(), "é".encode(), "中".encode(), "😀".encode(), "𝄞".encode()
CHARS = [b"a", b"b", b" ", E_ACUTE, "ü".encode(), EURO, HAN, GRIN, CLEF, b'"', b"\\", b"\t"]


def _text(rng: random.Random, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        out += rng.choice(CHARS)
    return bytes(out)


def writes(case: str) -> list[tuple[int, bytes]]:
    """(fd, bytes) in the order they are written."""
    if case == "straddle-64k":
        return [
            (1, b"a" * (64 * KIB - 1) + EURO + b"\n"),  # the 3-byte char straddles 64 KiB
            (2, b"c" * (64 * KIB - 1) + E_ACUTE + b"\n"),
            (1, b"b" * (64 * KIB - 2) + GRIN + b"\n"),
            (1, b"d" * (4 * KIB - 1)),  # a write boundary inside a character
            (1, HAN[:1]),
            (1, HAN[1:] + b"\n"),
        ]
    if case == "straddle-256k":
        return [
            (1, b"x" * (256 * KIB - 1) + EURO + b"\n"),
            (2, b"y" * (256 * KIB - 2) + CLEF + b"\n"),
            (1, b"z" * (256 * KIB - 3) + GRIN + b"tail"),  # unterminated last line
        ]
    if case == "line-over-1m":
        # One line longer than a stream piece (1 MiB), a 4-byte char across the cut.
        return [(1, b"p" * (MIB - 2) + GRIN + b"q" * 5000 + EURO + b"\n")]
    if case == "interleaved":
        rng = random.Random(7)
        data = {1: bytearray(), 2: bytearray()}
        for fd in (1, 2):
            while len(data[fd]) < 1536 * KIB:
                data[fd] += _text(rng, rng.randint(0, 9000)) + b"\n"
        data[1] += b"no newline at the end \xf0\x9f\x98\x80"
        out = []
        pos = {1: 0, 2: 0}
        fd = 1
        while pos[1] < len(data[1]) or pos[2] < len(data[2]):
            if pos[fd] < len(data[fd]):
                step = rng.choice((4093, 4096, 4099, 1, 2, 3, 65537))
                out.append((fd, bytes(data[fd][pos[fd] : pos[fd] + step])))
                pos[fd] += step
            fd = 3 - fd
        return out
    if case == "unterminated-stderr":
        rng = random.Random(11)
        return [(1, b"start\n"), (2, _text(rng, 300 * KIB).replace(b"\n", b"."))]
    if case == "trickle":
        # Byte by byte, with pauses: every character is split across writes.
        line = "slow é € 中 😀 𝄞 done\n".encode()
        return [(1, line[i : i + 1]) for i in range(len(line))] + [(2, line)]
    raise ValueError(case)


CASES = ["straddle-64k", "straddle-256k", "line-over-1m", "interleaved", "unterminated-stderr", "trickle"]
LONG_LINES = {"line-over-1m"}  # delivered to streams in pieces of at most 1 MiB


def expected(case: str) -> tuple[bytes, bytes]:
    out, err = bytearray(), bytearray()
    for fd, data in writes(case):
        (out if fd == 1 else err).extend(data)
    return bytes(out), bytes(err)


def main() -> None:
    case = sys.argv[1]
    pause = 0.01 if case == "trickle" else 0.0
    for n, (fd, data) in enumerate(writes(case)):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if pause:
            time.sleep(pause)
        elif n % 64 == 63:
            time.sleep(0.001)


if __name__ == "__main__":
    main()
