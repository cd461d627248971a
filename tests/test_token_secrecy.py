"""The bearer token stays with the daemon: not in /proc/<pid>/cmdline or environ, nor in children."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest

from sandbox_api.cli import without_token

pytestmark = pytest.mark.timeout(60)

TOKEN = "tok-4b1d-secret-9e7a"


def _status(url: str, token: str | None = None, body: dict | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _proc(pid: int, name: str) -> bytes:
    with open(f"/proc/{pid}/{name}", "rb") as f:
        return f.read()


def _assert_hidden_and_working(daemon, token: str = TOKEN) -> None:
    pid = daemon.proc.pid
    assert token.encode() not in _proc(pid, "cmdline")
    assert token.encode() not in _proc(pid, "environ")
    assert _status(f"{daemon.url}/process")[0] == 401
    assert _status(f"{daemon.url}/process", "wrong")[0] == 401
    assert _status(f"{daemon.url}/process", token)[0] == 200
    # A child does not inherit it either.
    status, text = _status(f"{daemon.url}/process", token, {"command": "env", "waitForCompletion": True, "timeout": 10})
    assert status == 200, text
    assert token not in text and "SANDBOX_API_TOKEN" not in text


@pytest.mark.parametrize("args", [["--token", TOKEN], [f"--token={TOKEN}"], ["-token", TOKEN]])
def test_token_flag_leaves_the_command_line(daemon_factory, args):
    d = daemon_factory(args=args)
    d.start()
    cmdline = _proc(d.proc.pid, "cmdline").split(b"\0")
    assert b"-p" in cmdline  # the rest of the command line is intact
    _assert_hidden_and_working(d)


def test_token_from_the_environment_leaves_it(daemon_factory):
    d = daemon_factory(env={"SANDBOX_API_TOKEN": TOKEN})
    d.start()
    _assert_hidden_and_working(d)
    assert b"SANDBOX_API_TOKEN=" + b"*" * len(TOKEN) in _proc(d.proc.pid, "environ")


def test_token_file(daemon_factory, tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    os.chmod(path, 0o600)
    d = daemon_factory(args=["--token-file", str(path)])
    d.start()
    assert str(path).encode() in _proc(d.proc.pid, "cmdline")
    _assert_hidden_and_working(d)


def test_token_file_from_the_environment(daemon_factory, tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN)
    d = daemon_factory(env={"SANDBOX_API_TOKEN_FILE": str(path)})
    d.start()
    _assert_hidden_and_working(d)


@pytest.mark.parametrize("content", [None, "", "\n"])
def test_an_unreadable_or_empty_token_file_stops_the_start(daemon_factory, tmp_path, content):
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    d = daemon_factory(args=["--token-file", str(path)])
    with pytest.raises(RuntimeError, match="token file"):
        d.start()


def test_without_token_removes_each_spelling():
    assert without_token(["-p", "1", "--token", "T", "-c", "x"], "T") == ["-p", "1", "-c", "x"]
    assert without_token(["--token=T", "-token=T", "--toke", "T"], "T") == []
    assert without_token(["--token-file", "/run/t"], "T") == ["--token-file", "/run/t"]
    assert without_token(["-c", "T"], "T") == ["-c", "T"]  # the same text as another flag's value stays
