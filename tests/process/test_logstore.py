"""The on-disk output log and the record journal, on real files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sandbox_api.http.streams import READ_STEP, READ_STEP_FAST, READ_STEP_MAX, json_string, next_step, prefix_lines
from sandbox_api.process.logreader import follow
from sandbox_api.process.logstore import MAX_RECORDS, STDERR, STDOUT, OutputLog
from sandbox_api.process.records import ProcessRecord, RecordStore


def write(log: OutputLog, stream: int, data: bytes) -> None:
    with open(log.paths[stream], "ab") as f:
        f.write(data)


def replay(log: OutputLog) -> list[tuple[int, bytes]]:
    out = []
    with log.reader() as reader:
        while chunks := reader.read():
            out += [(c.stream, c.data) for c in chunks]
    return out


def test_one_stream_needs_no_index_file(tmp_path: Path):
    log = OutputLog(tmp_path, "k")
    log.open()
    write(log, STDOUT, b"a\nb\n")
    log.scan_all()
    write(log, STDOUT, b"c\n")
    log.scan_all()
    assert not log.index_path.exists()
    assert replay(log) == [(STDOUT, b"a\nb\nc\n")]
    log.finish()


def test_interleaving_is_kept_in_an_index_file_that_survives_a_restart(tmp_path: Path):
    log = OutputLog(tmp_path, "k")
    log.open()
    for i in range(3):
        write(log, STDOUT, b"out%d\n" % i)
        log.scan_all()
        write(log, STDERR, b"err%d\n" % i)
        log.scan_all()
    write(log, STDOUT, b"partial")
    log.scan_all()
    assert log.index_path.exists()
    expected = [
        (STDOUT if i % 2 == 0 else STDERR, b"%s%d\n" % (b"out" if i % 2 == 0 else b"err", i // 2)) for i in range(6)
    ]
    assert replay(log) == expected
    log.close()  # the daemon dies: the unterminated line was never indexed

    again = OutputLog(tmp_path, "k")
    again.load(finished=False)
    assert replay(again) == expected
    again.open()
    write(again, STDOUT, b" line\n")
    again.finish()
    assert replay(again)[-1] == (STDOUT, b"partial line\n")


def test_finished_single_stream_log_keeps_its_unterminated_line_after_a_restart(tmp_path: Path):
    log = OutputLog(tmp_path, "k")
    log.open()
    write(log, STDOUT, b"one\ntwo")
    log.finish()
    again = OutputLog(tmp_path, "k")
    again.load(finished=True)
    assert replay(again) == [(STDOUT, b"one\ntwo\n")]


def test_records_beyond_the_limit_are_forgotten_but_no_line_is_lost(tmp_path: Path):
    log = OutputLog(tmp_path, "k")
    log.open()
    switches = MAX_RECORDS + 1000
    for i in range(switches):
        os.write(log.child_fds()[i % 2], b"%d\n" % i)
        log.scan(STDOUT if i % 2 == 0 else STDERR)
    assert len(log.records) <= MAX_RECORDS
    assert log.base > 0
    lines = {}
    for stream, data in replay(log):
        lines.setdefault(stream, []).extend(data.splitlines())
    assert [int(x) for x in lines[STDOUT]] == list(range(0, switches, 2))
    assert [int(x) for x in lines[STDERR]] == list(range(1, switches, 2))
    log.finish()


def test_cap_drops_the_oldest_bytes_and_readers_resume_at_a_line(tmp_path: Path):
    log = OutputLog(tmp_path, "k")
    log.open()
    write(log, STDOUT, b"".join(b"line %06d\n" % i for i in range(100_000)))  # 1.2 MB
    log.scan_all()
    log.enforce_cap(128 * 1024)
    assert log.punched
    assert os.stat(log.paths[STDOUT]).st_blocks * 512 < 300 * 1024
    chunks = []
    with log.reader() as reader:
        while batch := reader.read():
            chunks += batch
    assert chunks[0].truncated
    text = b"".join(c.data for c in chunks).splitlines()
    first = int(text[0].split()[1])
    assert text == [b"line %06d" % i for i in range(first, 100_000)]
    tail = log.tail(STDOUT, 1000)
    assert tail.startswith("[... truncated") and tail.endswith("line 099999\n")
    log.finish()


def test_record_journal_keeps_the_last_state_and_compacts(tmp_path: Path):
    store = RecordStore(tmp_path)
    store.open()
    record = ProcessRecord(key="a", pid="1", name="n", command="c", working_dir="", cwd="/")
    for code in range(5):
        record.exit_code = code
        store.save(record)
    other = ProcessRecord(key="b", pid="2", name="m", command="d", working_dir="", cwd="/")
    store.save(other)
    store.close()
    reloaded = RecordStore(tmp_path)
    records = reloaded.load_all()
    assert [(r.key, r.exit_code) for r in records] == [("a", 4), ("b", 0)]
    reloaded.open()
    reloaded.compact(records)
    assert len(store.path.read_text().splitlines()) == 2
    assert [r.key for r in RecordStore(tmp_path).load_all()] == ["a", "b"]


def test_json_string_escapes_like_json():
    samples = [
        b"plain",
        b'q"uote\\back',
        b"tab\tcr\rnl\n",
        "héllo € 漢".encode(),
        b"bad\xff\xfe",
        b"ctl\x01\x1b[0m",
        "\u2028\u00a0".encode(),
        b"del\x7f",
        b"",
    ]
    for data in samples:
        assert json.loads(b'"' + json_string(data) + b'"') == data.decode("utf-8", "replace")


def test_prefix_lines_prefixes_every_line_and_repairs_utf8():
    assert prefix_lines(b"a\nb\n", b"stdout:") == b"stdout:a\nstdout:b\n"
    assert prefix_lines(b"x\xff\n", b"stderr:") == "stderr:x\ufffd\n".encode()
    assert prefix_lines(b"", b"stdout:") == b""


def test_a_line_longer_than_the_step_is_read_alone_not_a_mib_at_a_time(tmp_path: Path):
    log = OutputLog(tmp_path, "k")
    log.open()
    line = b"x" * (20 * 1024 - 1) + b"\n"
    write(log, STDOUT, line * 200)  # 4 MB of 20 KiB lines
    log.scan_all()
    with log.reader() as reader:
        first = reader.read(8192)
        # About one line (the reads double until a line ends), not the old 1 MiB at once.
        assert [c.data for c in first] == [line]
        assert sum(len(c.data) for c in reader.read(8192)) <= 2 * len(line)
    assert b"".join(data for _, data in replay(log)) == line * 200
    log.finish()


async def test_the_follow_step_grows_while_the_consumer_keeps_up_and_falls_back_when_it_does_not(tmp_path: Path):
    log = OutputLog(tmp_path, "k")
    log.open()
    line = b"y" * 15 + b"\n"
    total = 2 * 1024 * 1024
    write(log, STDOUT, line * (total // len(line)))
    log.scan_all()
    log.finish()
    behind = False
    asked: list[int] = []

    def pace(step: int) -> int:
        asked.append(step)
        return next_step(step, behind, fast=False)

    sizes: list[int] = []
    async for item in follow(log, 5.0, (), 8192, None, pace):
        assert item is not None
        sizes.append(sum(len(c.data) for c in item))
        if len(sizes) == 8:
            behind = True  # the client stops keeping up: back to the small step at once
    assert sum(sizes) == total
    assert sizes[:5] == [8192, 16384, 32768, 65536, 65536]
    assert all(size <= 8192 for size in sizes[8:]) and len(sizes) > 9
    assert all(step <= 65536 for step in asked)


def test_a_client_that_earned_the_fast_send_buffer_reads_in_larger_steps_and_falls_back_when_behind():
    steps = [READ_STEP]
    for _ in range(6):
        steps.append(next_step(steps[-1], behind=False, fast=True))
    assert steps == [8192, 16384, 32768, 65536, 131072, 131072, 131072]
    assert READ_STEP_FAST > READ_STEP_MAX
    assert next_step(READ_STEP_FAST, behind=True, fast=False) == READ_STEP
    assert next_step(READ_STEP_FAST, behind=False, fast=False) == READ_STEP_MAX  # no longer fast: back under the cap
    # A stream of prefixed lines keeps the plain cap even for a fast client (slower beyond it).
    assert next_step(READ_STEP_MAX, behind=False, fast=True, fast_step=READ_STEP_MAX) == READ_STEP_MAX
