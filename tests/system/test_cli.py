"""The command line catches mistakes: unknown flags, an unusable state dir, bad environment values."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import Daemon


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox_api", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_an_unknown_flag_is_the_usage_line_and_exit_2():
    for args in (["--prot", "9000"], ["--po", "9000"], ["-prot=9000"], ["stray-argument"]):
        result = run(*args)
        assert result.returncode == 2, args
        assert result.stderr.startswith("usage: sandbox-api"), result.stderr
        assert "sandbox-api: error:" in result.stderr, result.stderr  # (-prot=9000 reads as -p "rot=9000")


def test_go_style_spellings_still_work():
    for args in (["-port=9", "--version"], ["-port", "9", "-version"], ["--port=9", "-state-dir", "/x", "--version"]):
        result = run(*args)
        assert (result.returncode, result.stdout.startswith("sandbox-api ")) == (0, True), (args, result.stderr)


def test_help_lists_the_subcommands_the_environment_and_an_example():
    result = run("--help")
    assert result.returncode == 0
    for text in ("sandbox-api ready", "sandbox-api start-process", "SANDBOX_START_COMMAND", "SANDBOX_STATE_DIR",
                 "WORKDIR", "SANDBOX_API_TOKEN", "example:", "--token-file"):  # fmt: skip
        assert text in result.stdout, text


def test_an_unusable_state_dir_is_named_with_the_way_out(tmp_path: Path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for state_dir, reason in ((a_file, "not a directory"), (a_file / "below", "(a parent): not a directory")):
        result = run("-p", "0", env={"SANDBOX_STATE_DIR": str(state_dir)})
        assert result.returncode == 1
        assert f"state dir {a_file}" in result.stderr and reason in result.stderr, result.stderr
        assert "set --state-dir or SANDBOX_STATE_DIR" in result.stderr
        assert "cannot serve" not in result.stderr


def test_environment_values_that_are_not_understood_are_reported_once(tmp_path: Path, workdir: Path):
    env = {"SANDBOX_MAX_LOG_FILE_BYTES": "abc", "DISABLE_TERMINAL": "yes", "SANDBOX_STOP_GRACE_SECONDS": "soon"}
    daemon = Daemon(tmp_path / "state", workdir, env=env)
    daemon.start()
    try:
        with urllib.request.urlopen(f"{daemon.url}/health", timeout=10) as r:
            assert r.status == 200
    finally:
        daemon.stop()
    log = daemon.log()
    assert log.count("SANDBOX_MAX_LOG_FILE_BYTES=abc is not a whole number: using 33554432") == 1
    assert log.count("DISABLE_TERMINAL=yes is not true or false: using false") == 1
    assert log.count("SANDBOX_STOP_GRACE_SECONDS=soon is not a number: using 10") == 1


def test_log_lines_carry_milliseconds_and_follow_the_log_level(tmp_path: Path, workdir: Path):
    quiet = Daemon(tmp_path / "state-quiet", workdir, env={"SANDBOX_LOG_LEVEL": "warning"})
    quiet.start()
    try:
        urllib.request.urlopen(f"{quiet.url}/health", timeout=10).read()
    finally:
        quiet.stop()
    assert "listening" not in quiet.log() and '"GET /health' not in quiet.log()

    odd = Daemon(tmp_path / "state-odd", workdir, env={"SANDBOX_LOG_LEVEL": "loud"})
    odd.start()
    odd.stop()
    lines = [json.loads(line) for line in odd.log().splitlines() if line.startswith("{")]
    assert any(
        line["msg"] == "SANDBOX_LOG_LEVEL=loud is not debug, info, warning or error: using info" for line in lines
    )
    assert any("listening" in line["msg"] for line in lines)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]) for line in lines), lines
