"""How output becomes NDJSON events: the native escaper, the event framing, the lone empty
line rule, and the scan that finds where complete lines end. Checked against json.dumps,
which escapes exactly as the wire has always done (msgspec's output before the native one)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from sandbox_api.http import streams
from sandbox_api.linux import _native
from sandbox_api.process.logstore import STDERR, STDOUT, TRUNCATION_MARKER, Chunk, OutputLog
from sandbox_api.process.route_common import ndjson_events


def reference(text: str) -> bytes:
    """The body of the JSON string literal of `text`, as the stream has always written it."""
    return json.dumps(text, ensure_ascii=False)[1:-1].encode()


def test_native_escape_is_json_dumps_for_every_byte_at_every_place_in_a_window():
    # Every ASCII byte (control characters, quote, backslash, DEL) and multibyte characters,
    # at each offset around the 16- and 64-byte blocks the escaper classifies at once.
    specials = [chr(c) for c in range(128)] + ["é", "€", "😀", "\u2028"]
    for special in specials:
        for before in (0, 1, 7, 15, 16, 17, 47, 63, 64, 65, 79, 80, 81, 130):
            for after in (0, 1, 15, 16, 63, 64, 100):
                text = "a" * before + special + "b" * after
                assert _native.json_escape(b"", text.encode(), b"") == reference(text), (special, before, after)


def test_native_escape_of_random_text_and_of_text_that_is_all_escapes():
    rng = random.Random(7)
    pieces = ["x", "yz", "\n", "\r\n", "\0", '"', "\\", "\t", "\x1b[31m", "é", "€", "😀", "\x7f", "q" * 70]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 120)))
        assert _native.json_escape(b"<", text.encode(), b">") == b"<" + reference(text) + b">"
    # Six bytes out for each byte in: the output grows past its first guess, more than once.
    for size in (1, 100, 4096, 300_000):
        text = "\x01" * size
        assert _native.json_escape(b"h", text.encode(), b"t" * 50) == b"h" + reference(text) + b"t" * 50
    # Many escapes first (past the room guessed for them), then a long clean run: the run must
    # not be copied past the end of the buffer (it was, in the byte-at-a-time path).
    for escapes, clean in ((1000, 9000), (5000, 100_000), (3000, 70_000)):
        text = "\x01" * escapes + "c" * clean + "\n\x02" * 10
        assert _native.json_escape(b"h", text.encode(), b"tail") == b"h" + reference(text) + b"tail"
    # A buffer that is not bytes (a slice of one, not copied) is read as it is.
    data = b"skip" + b'line one\nline "two"' + b"\n"
    assert _native.json_escape(b"", memoryview(data)[4:-1], b"") == reference('line one\nline "two"')


def test_framed_event_takes_a_prefix_of_the_data_and_repairs_invalid_utf8():
    data = 'héllo\n€ "x"\n'.encode()
    assert streams.json_framed(b"[", data, b"]", len(data) - 1) == b"[" + reference('héllo\n€ "x"') + b"]"
    assert streams.json_framed(b"", data, b"") == reference('héllo\n€ "x"\n')
    for bad in (b"a\xffb", b"cut \xe2\x82", b"\xc3(", b"\xed\xa0\x80 surrogate", b"ok\x80\x80"):
        assert streams.json_framed(b"", bad, b"") == reference(bad.decode("utf-8", "replace"))
        assert streams.json_string(bad) == reference(bad.decode("utf-8", "replace"))


def test_events_are_the_lines_of_each_chunk_and_a_lone_empty_line_is_none():
    chunks = [
        Chunk(STDOUT, b"one\ntwo\n", end=8),
        Chunk(STDOUT, b"\n", end=9),  # a lone empty line: no event
        Chunk(STDERR, "\n\nmid é\r\0\n".encode(), truncated=True, end=12),
        Chunk(STDOUT, b"x\xff\n", end=13),
    ]
    marker = TRUNCATION_MARKER[:-1]
    expected = [
        {"type": "stdout", "data": "one\ntwo"},
        {"type": "stderr", "data": marker},
        {"type": "stderr", "data": "\n\nmid é\r\0"},
        {"type": "stdout", "data": "x\ufffd"},
    ]
    text = ndjson_events(chunks).decode()
    assert text.endswith("\n") and [json.loads(line) for line in text.splitlines()] == expected
    assert text == "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in expected)
    with_offsets = [json.loads(line) for line in ndjson_events(chunks, offsets=True).decode().splitlines()]
    assert [e.get("offset") for e in with_offsets] == [8, None, 12, 13]
    assert ndjson_events([Chunk(STDOUT, b"\n", end=1)]) == b""
    one = ndjson_events([Chunk(STDOUT, b"only\n", end=5)])
    assert one == b'{"type":"stdout","data":"only"}\n'


def test_the_scan_indexes_up_to_the_last_newline_however_far_back_it_is(tmp_path: Path):
    log = OutputLog(tmp_path, "k")
    log.open()
    try:
        fd = log.child_fds()[0]
        os.write(fd, b"first\n" + b"x" * 200_000)  # the last newline is 200 KB before the end
        log.scan(STDOUT)
        assert log.records == [[STDOUT, 6]]
        os.write(fd, b"y\n" + b"z" * 10)  # now it is 10 bytes before the end
        log.scan(STDOUT)
        assert log.records == [[STDOUT, 6 + 200_000 + 2]]
        os.write(fd, b"w" * 5000)  # no newline in what is new: nothing more to index
        log.scan(STDOUT)
        assert log.records == [[STDOUT, 6 + 200_000 + 2]]
    finally:
        log.close()


def test_without_the_native_escaper_an_older_build_escapes_the_same():
    rng = random.Random(3)
    pieces = ["x", "\n", "\0", '"', "\\", "é", "😀", "\x7f", "\u2028", "\r"]
    for _ in range(500):
        data = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 80))).encode()
        assert streams._msgspec_escape(b"{", memoryview(data), b"}") == _native.json_escape(b"{", data, b"}")


def test_asked_for_ascii_only_the_escaper_answers_none_at_any_byte_that_is_not():
    for size in (0, 1, 15, 64, 79, 80, 81, 200):
        text = "a\n" * size
        assert _native.json_escape(b"", text.encode(), b"", True) == reference(text)
        for at in {0, size // 2, max(size - 1, 0), size}:
            for char in ("é", "€", "😀"):
                other = text[:at] + char + text[at:]
                assert _native.json_escape(b"", other.encode(), b"", True) is None, (size, at)
                assert _native.json_escape(b"", other.encode(), b"") == reference(other)
    assert _native.json_escape(b"", b"bad \xff", b"", True) is None
