"""Fuzzing a real daemon from its own OpenAPI document (`/openapi.json`) with schemathesis.

Every operation gets generated requests, valid and invalid; each answer must:
- not be a 5xx, except the 500s the contract itself specifies (`DOCUMENTED_500` below);
- come in time (no hang): `REQUEST_TIMEOUT`, and streams must send their first line at once;
- be a JSON `{"error": "..."}` when it is an error (MCP's errors are its protocol's);
- match the document: documented status, content type and response schema.

The daemon runs as root, so the fuzzing is fenced in twice:
- the daemon runs with `--user nobody` (when the test runs as root) and a working directory
  that belongs to nobody: the kernel refuses file writes and process actions elsewhere;
- every path parameter and path-like body field is rewritten to stay under that
  directory, commands are harmless `echo`s, MCP calls are read-only, port callbacks go
  nowhere, and operations that act on the machine itself are not fuzzed (`EXCLUDED`).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import hypothesis
import hypothesis.errors
import pytest
import requests
import schemathesis
import urllib3
from schemathesis import GenerationMode
from schemathesis.checks import load_all_checks
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ..conftest import Daemon

pytestmark = [pytest.mark.timeout(170)]

# Per operation and generation mode (valid, invalid). More, or another seed, to search deeper:
# SANDBOX_FUZZ_EXAMPLES=200 SANDBOX_FUZZ_SEED=7 pytest tests/robustness/test_schemathesis.py
MAX_EXAMPLES = int(os.environ.get("SANDBOX_FUZZ_EXAMPLES", "20"))
SEED = int(os.environ.get("SANDBOX_FUZZ_SEED", "1"))  # the same requests on every run unless asked
REQUEST_TIMEOUT = 20.0  # seconds: longer is a hang
STREAM_FIRST_LINE_SECONDS = 5.0

# Not fuzzed, and why.
EXCLUDED = {
    ("POST", "/upgrade"): "replaces the running binary and re-execs it",
    ("*", "/port/{port}"): "a reverse proxy to whatever listens on the machine (even to itself)",
    ("*", "/port/{port}/{path}"): "same",
    ("GET", "/terminal/ws"): "a websocket: schemathesis speaks plain HTTP",
}
if shutil.which("wg"):
    EXCLUDED[("PUT", "/network/tunnel/config")] = "with `wg` installed a valid config would reroute the machine"

# Streams that never end by themselves: only their status and first line are checked.
STREAMS = {("GET", "/watch/filesystem/{path}"), ("GET", "/process/{identifier}/logs/stream")}

# 500 is the contract's answer in these cases (spec references), so it is not a failure.
DOCUMENTED_500 = {
    # filesystem.md §3: "stat fails otherwise (EACCES, ENOTDIR ...) -> 500 with the OS message".
    ("GET", "/filesystem/{path}"): re.compile(r"^stat .*: "),
    # process-network-system.md §5: "Other read errors and bad JSON give 500".
    ("POST", "/environment/reload"): re.compile(r"^(open |invalid metadata document)"),
    # mcp-terminal-sdk.md (drives): "A missing path or a path that is not a mount point is 500".
    ("DELETE", "/drives/mount/{mountPath}"): re.compile(r"^Failed to unmount drive: "),
    # mcp-terminal-sdk.md (drives): mounting fails with 500 `Failed to mount drive: ...`.
    ("POST", "/drives/mount"): re.compile(r"^Failed to mount drive: "),
}

# 501 is the answer where a capability needs a program this machine lacks (blfs, wg, rg).
DOCUMENTED_501 = {
    ("POST", "/drives/mount"),
    ("DELETE", "/drives/mount/{mountPath}"),
    ("PUT", "/network/tunnel/config"),
    ("DELETE", "/network/tunnel"),
    ("GET", "/filesystem-content-search/{path}"),
}

PATH_PARAMETERS = {"path"}  # `{path}` routes take file paths: confined to the work directory
SAFE_COMMANDS = ("echo fuzz", "echo out; echo err >&2", "printf 'a\\nb'", "true", "echo $HOME", "pwd")
SAFE_MCP_METHODS = (
    "tools/list",
    "ping",
    "initialize",
    "resources/list",
    "prompts/list",
    "notifications/initialized",
    "no/such/method",
    "tools/call",
)
SAFE_MCP_TOOLS = ("processesList", "fsGetWorkingDirectory", "noSuchTool")
DANGEROUS_ENV = {"BASH_ENV", "ENV", "LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH"}
DEAD_END_CALLBACK = "http://127.0.0.1:9/callback"  # the discard port: nothing listens


# --- the daemon ----------------------------------------------------------------------------


class Fuzzed:
    """The daemon, and what exists in it: half the generated ids and paths are replaced
    by these, so the fuzzing reaches real files, processes and uploads, not only 404s."""

    def __init__(self, daemon: Daemon, workdir: Path) -> None:
        self.daemon = daemon
        self.url = daemon.url
        self.workdir = workdir
        self.known: dict[str, tuple[Any, ...]] = {}

    def seed(self) -> None:
        files = {
            "file.txt": b"hello\nworld\n",
            "empty": b"",
            "binary.bin": bytes(range(256)),
            "dir/a.py": b"print('a')\n",
            "dir/sub/b.md": b"# b\n",
            "dir/.hidden": b"h\n",
        }
        for name, data in files.items():
            (self.workdir / name).parent.mkdir(parents=True, exist_ok=True)
            (self.workdir / name).write_bytes(data)
        owner = self.workdir.stat()
        for path in self.workdir.rglob("*"):
            os.chown(path, owner.st_uid, owner.st_gid)
        paths = ("", ".", "dir", "dir/sub", "dir/a.py", "dir/sub/b.md", *files)
        self.known["path"] = paths + tuple(f"{self.workdir}/{p}" for p in paths) + tuple(f"{p}/**" for p in ("dir", ""))
        started = [
            self._post("/process", {"command": "echo seeded", "name": "seed-done", "waitForCompletion": True}),
            self._post("/process", {"command": "cat", "name": "seed-stdin", "stdin": True}),
            self._post("/process", {"command": "sleep 120", "name": "seed-sleep"}),
        ]
        pids = tuple(p["pid"] for p in started)
        self.known["identifier"] = (*pids, *(p["name"] for p in started))
        self.known["pid"] = (*(int(pid) for pid in pids), self.daemon.proc.pid)
        uploads = [self._post(f"/filesystem-multipart/initiate/{self.workdir}%2Fupload-{n}.bin", {}) for n in range(4)]
        self.known["uploadId"] = tuple(u["uploadId"] for u in uploads)
        part = requests.put(
            f"{self.url}/filesystem-multipart/{uploads[0]['uploadId']}/part?partNumber=1",
            files={"file": ("blob", b"part one")},
            timeout=10,
        )
        assert part.status_code == 200, part.text
        self.known["name"] = ("xterm.js", "xterm.css", "addon-fit.js")
        # Shell sessions: one with a command run (its output is execId 1).
        self._post("/session", {"name": "seed-session"})
        self._post("/session/seed-session/exec", {"command": "echo seeded"})
        self.known["id"] = ("seed-session",)
        self._post("/session", {"name": "seed-doomed"})  # what DELETE gets instead of the seed (make_harmless)
        self._post("/session", {"name": "seed-output"})  # what output reads get: its execId 1 stays kept
        self._post("/session/seed-output/exec", {"command": "echo seeded"})
        self.known["execId"] = ("1",)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = requests.post(f"{self.url}{path}", json=body, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Fuzzed]:
    base = Path(tempfile.mkdtemp(prefix="sandbox-fuzz-"))
    workdir = base / "work"
    workdir.mkdir()
    args: list[str] = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chmod(base, 0o755)
        os.chown(workdir, nobody.pw_uid, nobody.pw_gid)
        args = ["--user", "nobody"]
    env = {
        "SHELL": "/bin/sh",
        "HOME": str(workdir),
        "BL_METADATA_PATH": str(base / "no-metadata"),
        "BLAXEL_SCALE_FILE": str(base / "no-scale-dir" / "scale"),
        "SANDBOX_BLFS_PATH": str(base / "no-blfs"),
        "SANDBOX_DEV_MODE": "true",
        "SANDBOX_SEARCH_TIMEOUT_SECONDS": "5",
        "SANDBOX_STOP_GRACE_SECONDS": "1",
        "SANDBOX_MAX_UPLOAD_BYTES": str(1024 * 1024),
    }
    daemon = Daemon(base / "state", workdir, env=env, args=args)
    for key in (
        "RELACE_API_KEY",
        "MORPH_API_KEY",
        "SANDBOX_API_TOKEN",
        "BL_NETWORKING_CONFIG",
        "SHELL_ARGS",
        "DISABLE_TERMINAL",
        "BL_SANDBOX_USER",
        "BL_SANDBOX_USER_ENABLED",
        "BL_ENV_VAR_PATH",
    ):
        daemon.env.pop(key, None)
    daemon.start()
    try:
        fuzzed = Fuzzed(daemon, workdir)
        fuzzed.seed()
        yield fuzzed
    finally:
        daemon.stop(signal.SIGKILL)
        _kill_processes_of(workdir)
        shutil.rmtree(base, ignore_errors=True)


def _kill_processes_of(workdir: Path) -> None:
    """Managed processes outlive the daemon: end the ones the fuzzing started."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.readlink(f"/proc/{pid}/cwd").startswith(str(workdir)):
                    os.kill(int(pid), signal.SIGKILL)
            except OSError:
                continue


def load_schema(fuzzed: Fuzzed) -> Any:
    schema = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")
    schema.config.update(base_url=fuzzed.url, request_timeout=REQUEST_TIMEOUT)
    for method, path in EXCLUDED:
        schema = schema.exclude(path=path) if method == "*" else schema.exclude(method=method, path=path)
    return schema


# --- keeping the fuzzing harmless -------------------------------------------------------------


def confined(value: Any, workdir: Path, absolute: bool | None = None) -> str:
    """A path under `workdir` made from any fuzzed value: no `..`, no `~`, and nothing
    that URL-decodes into either (schemathesis decodes once more before encoding)."""
    text = "" if value is None else str(value)
    while (decoded := unquote(text)) != text:
        text = decoded
    text = text.replace("%", "_")
    if text == str(workdir) or text.startswith(f"{workdir}/"):
        text = text[len(str(workdir)) :]  # already under it (a known path)
    parts = [p.lstrip("~") for p in text.split("/")]
    parts = [p for p in parts if p not in ("", ".", "..")]
    relative = "/".join(parts)
    if absolute is None:
        absolute = zlib.crc32(text.encode("utf-8", "surrogatepass")) % 2 == 0
    if absolute or "/" in relative:  # a path holding `/` is sent as `%2F`: absolute anyway
        return f"{workdir}/{relative}" if relative else str(workdir)
    return relative


def _pick(options: tuple[str, ...], seed: Any) -> str:
    return options[zlib.crc32(repr(seed).encode("utf-8", "surrogatepass")) % len(options)]


def _known(value: Any, known: tuple[Any, ...]) -> Any:
    """Half the values (decided by the value itself) become one of `known`."""
    digest = zlib.crc32(repr(value).encode("utf-8", "surrogatepass"))
    return known[digest // 2 % len(known)] if known and digest % 2 else value


def make_harmless(case: Any, fuzzed: Fuzzed) -> None:
    workdir = fuzzed.workdir
    operation = (case.method.upper(), case.path)
    # Generated path parameters come URL-encoded; what replaces them must be too.
    parameters = case.path_parameters or {}
    for name, value in parameters.items():
        known = _known(value, fuzzed.known.get(name, ()))
        if known is not value:
            parameters[name] = quote(str(known), safe="")
    for name in PATH_PARAMETERS & set(parameters):
        # /filesystem/tree takes every path as absolute (`tree/etc` is /etc).
        absolute = True if case.path.startswith("/filesystem/tree/") else None
        parameters[name] = quote(confined(parameters[name], workdir, absolute=absolute), safe="")
    if operation == ("DELETE", "/session/{id}") and parameters.get("id") == "seed-session":
        parameters["id"] = "seed-doomed"  # the seeded session stays for the operations after this one
    if operation == ("GET", "/session/{id}/output/{execId}") and parameters.get("id") == "seed-session":
        parameters["id"] = "seed-output"  # the seed's own execs (fuzzed) push its execId 1 out of those kept
    if operation == ("GET", "/process/{identifier}/wait") and isinstance(case.query, dict):
        timeout = case.query.get("timeout")
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 2:
            case.query["timeout"] = 2  # a long poll on a running process answers at its timeout: not a hang
    body = case.body
    if operation == ("POST", "/mcp"):
        for message in body if isinstance(body, list) else [body]:  # a batch too (it is refused)
            if isinstance(message, dict):
                _read_only_rpc(message)
    if not isinstance(body, dict):
        return  # any other body is refused before it is acted on
    if operation == ("POST", "/process"):
        if isinstance(body.get("command"), str):  # another type is refused (400)
            body["command"] = _pick(SAFE_COMMANDS, body["command"])
        if isinstance(body.get("env"), dict):
            for key in DANGEROUS_ENV & set(body["env"]):
                del body["env"][key]
    elif operation == ("POST", "/session/{id}/exec"):  # shell sessions: the same harmless commands
        if isinstance(body.get("command"), str):
            body["command"] = _pick(SAFE_COMMANDS, body["command"])
        for key in ("timeout", "idleTimeout"):
            if isinstance(body.get(key), (int, float)) and not isinstance(body[key], bool) and body[key] > 2:
                body[key] = 2
    elif operation == ("POST", "/session") and isinstance(body.get("env"), dict):
        for key in DANGEROUS_ENV & set(body["env"]):
            del body["env"][key]
    elif operation == ("POST", "/filesystem-copy"):
        for key in ("source", "destination"):
            if isinstance(body.get(key), str):
                body[key] = confined(_known(body[key], fuzzed.known["path"]), workdir)
    elif operation[1].startswith("/edit/") and isinstance(body.get("path"), str):  # issue 16's exact edits
        body["path"] = confined(_known(body["path"], fuzzed.known["path"]), workdir)
    elif operation == ("PUT", "/filesystem/tree/{path}") and isinstance(body.get("files"), dict):
        body["files"] = {confined(k, workdir, absolute=False): v for k, v in body["files"].items()}
    elif operation == ("POST", "/network/process/{pid}/monitor") and "callback" in body:
        body["callback"] = DEAD_END_CALLBACK


def _read_only_rpc(message: dict[str, Any]) -> None:
    """MCP tools run commands and write files: only read-only ones are called."""
    message["method"] = _pick(SAFE_MCP_METHODS, message.get("method"))
    if message["method"] == "tools/call":
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        params["name"] = _pick(SAFE_MCP_TOOLS, params.get("name"))
        message["params"] = params


# --- what every answer must be -----------------------------------------------------------------


def check_error_body(case: Any, status: int, content_type: str, body: bytes) -> None:
    if status < 400:
        return
    label = f"{case.method.upper()} {case.formatted_path} -> {status}"
    if (case.method.upper(), case.path) == ("POST", "/mcp"):
        # MCP's errors are its protocol's: a JSON-RPC error object, or the SDK's plain text
        # for a wrong Content-Type (mcp-in-aiohttp.md, the transport's table).
        if content_type.startswith("application/json"):
            assert isinstance(_json(body, label).get("error"), dict), label
        return
    assert content_type.startswith("application/json"), f"{label}: not JSON ({content_type}): {body[:200]!r}"
    data = _json(body, label)
    assert isinstance(data, dict) and isinstance(data.get("error"), str), f"{label}: no error string: {body[:200]!r}"


def check_no_server_error(case: Any, status: int, body: bytes) -> None:
    if status < 500:
        return
    label = f"{case.method.upper()} {case.formatted_path} -> {status}: {body[:300]!r}"
    if status == 501 and (case.method.upper(), case.path) in DOCUMENTED_501:
        return
    allowed = DOCUMENTED_500.get((case.method.upper(), case.path))
    assert status == 500 and allowed is not None, f"server error: {label}"
    message = _json(body, label).get("error", "")
    assert allowed.search(message), f"a 500 the contract does not specify: {label}"


def _json(body: bytes, label: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise AssertionError(f"{label}: body is not JSON: {body[:200]!r}") from None


def check_stream(case: Any, url: str) -> int:
    """A stream must answer (an error, or its first line) at once; then it is left."""
    kwargs = case.as_transport_kwargs(base_url=url)
    kwargs.pop("timeout", None)
    started = time.monotonic()
    with requests.request(**kwargs, stream=True, timeout=(5, STREAM_FIRST_LINE_SECONDS)) as response:
        content_type = response.headers.get("Content-Type", "")
        if response.status_code >= 300:
            body = response.content
            check_no_server_error(case, response.status_code, body)
            check_error_body(case, response.status_code, content_type, body)
            return response.status_code
        try:
            first = response.raw.readline()
        except (requests.exceptions.ReadTimeout, TimeoutError, urllib3.exceptions.ReadTimeoutError):
            raise AssertionError(
                f"{case.method.upper()} {case.formatted_path}: no first line within "
                f"{STREAM_FIRST_LINE_SECONDS} s (a hang)"
            ) from None
        assert content_type.startswith("text/plain"), content_type
        assert first or case.path.startswith("/process/"), "a watch starts with `[keepalive]`"
    assert time.monotonic() - started < REQUEST_TIMEOUT
    return response.status_code


load_all_checks()
DOCUMENT_CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


STATUSES: dict[str, Counter[int]] = defaultdict(Counter)  # what the fuzzing met, printed at the end


def exercise(case: Any, fuzzed: Fuzzed) -> None:
    """Send one generated request (made harmless first) and check its answer."""
    make_harmless(case, fuzzed)
    if (case.method.upper(), case.path) in STREAMS:
        STATUSES[f"{case.method.upper()} {case.path}"][check_stream(case, fuzzed.url)] += 1
        return
    try:
        response = case.call(base_url=fuzzed.url, timeout=REQUEST_TIMEOUT)
    except requests.exceptions.Timeout:
        raise AssertionError(
            f"{case.method.upper()} {case.formatted_path}: no answer within {REQUEST_TIMEOUT} s (a hang)"
        ) from None
    STATUSES[f"{case.method.upper()} {case.path}"][response.status_code] += 1
    content_type = (response.headers.get("content-type") or [""])[0]  # lower-case keys, lists of values
    check_no_server_error(case, response.status_code, response.content)
    check_error_body(case, response.status_code, content_type, response.content)
    case.validate_response(response, checks=DOCUMENT_CHECKS)


# schemathesis's own pytest integration (`schema.parametrize`, `from_fixture`) needs
# `Node._nodeid`, which pytest 9 removed: the operations are driven with Hypothesis here.
def test_api_answers_every_request_properly(fuzzed):
    schema = load_schema(fuzzed)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.seed(SEED)
            @hypothesis.settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(hypothesis.HealthCheck),
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # no shrinking: time-bound
                report_multiple_bugs=False,
            )
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                exercise(case, fuzzed)

            try:
                run()
            except (KeyboardInterrupt, SystemExit, pytest.fail.Exception):
                raise  # pytest-timeout's end of the test, among others
            except hypothesis.errors.Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE, operation.label
                continue  # nothing in this operation can be made invalid (no body, string parameters)
            except BaseException as e:
                failures.append(f"{operation.label} [{mode.value}]: {type(e).__name__}: {e}")
    for label, statuses in STATUSES.items():
        print(f"{label:55} {dict(sorted(statuses.items()))}")
    assert not failures, f"{len(failures)} operation(s) misbehave:\n\n" + "\n\n".join(failures)
