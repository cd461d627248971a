"""Retry-safe requests: `Idempotency-Key` on POST /process and on file writes, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from sandbox_api.app import build_app
from tests.helpers import pid_alive, wait_for

KEY = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"


def new_key() -> str:
    return str(uuid.uuid4())


def runs(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


async def post_process(client: TestClient, body: dict, key: str, **headers: str) -> tuple[int, bytes, dict]:
    resp = await client.post("/process", json=body, headers={KEY: key, **headers})
    return resp.status, await resp.read(), dict(resp.headers)


async def test_a_retried_process_runs_once_and_gets_the_first_answer(client, tmp_path):
    counter = tmp_path / "count"
    body = {"command": f"echo run >> {counter}; echo out", "waitForCompletion": True, "timeout": 30}
    key = new_key()
    status, first, headers = await post_process(client, body, key)
    assert status == 200 and REPLAYED not in headers
    status, second, headers = await post_process(client, body, key)
    assert status == 200 and headers[REPLAYED] == "true"
    assert second == first  # byte for byte: the same pid, logs, times
    assert runs(counter) == 1
    assert json.loads(second)["logs"] == "out\n"
    # Without a key, nothing changes: the command runs again.
    resp = await client.post("/process", json=body)
    assert resp.status == 200 and REPLAYED not in resp.headers
    assert runs(counter) == 2


async def test_the_same_key_with_another_request_is_422(client, tmp_path, workdir):
    counter = tmp_path / "count"
    key = new_key()
    status, _, _ = await post_process(client, {"command": f"echo a >> {counter}", "waitForCompletion": True}, key)
    assert status == 200
    status, text, _ = await post_process(client, {"command": f"echo b >> {counter}", "waitForCompletion": True}, key)
    assert status == 422
    assert "another request body" in json.loads(text)["error"]
    # The same key on another route (or path) is refused too, and nothing is written.
    resp = await client.put("/filesystem/x.txt", json={"content": "x"}, headers={KEY: key})
    assert resp.status == 422
    assert "was first used for POST /process" in (await resp.json())["error"]
    assert not (workdir / "x.txt").exists()
    assert counter.read_text() == "a\n"


async def test_concurrent_duplicates_run_once(client, tmp_path):
    counter = tmp_path / "count"
    body = {"command": f"echo run >> {counter}; sleep 0.6", "waitForCompletion": True, "timeout": 30}
    key = new_key()
    first = asyncio.ensure_future(post_process(client, body, key))
    await wait_for(counter.exists, timeout=10)
    duplicates = await asyncio.gather(*(post_process(client, body, key) for _ in range(5)))
    status, answer, _ = await first
    assert status == 200
    pid = json.loads(answer)["pid"]
    for status, text, headers in duplicates:
        assert status == 409, text
        error = json.loads(text)
        assert "still in progress" in error["error"] and error["pid"] == pid
        assert headers["Retry-After"] == "1"
    assert runs(counter) == 1
    status, again, headers = await post_process(client, body, key)  # once answered: the replay
    assert status == 200 and again == answer and headers[REPLAYED] == "true"
    assert runs(counter) == 1


async def test_simultaneous_first_requests_start_one_process(client, tmp_path):
    counter = tmp_path / "count"
    body = {"command": f"echo run >> {counter}", "waitForCompletion": True, "timeout": 30}
    key = new_key()
    answers = await asyncio.gather(*(post_process(client, body, key) for _ in range(8)))
    assert sorted(status for status, _, _ in answers).count(200) >= 1
    assert {status for status, _, _ in answers} <= {200, 409}
    await wait_for(counter.exists, timeout=10)
    await asyncio.sleep(0.3)
    assert runs(counter) == 1


async def test_a_stream_is_not_replayed_but_never_runs_twice(client, tmp_path):
    counter = tmp_path / "count"
    body = {"command": f"echo run >> {counter}; echo hi", "waitForCompletion": True}
    key = new_key()
    resp = await client.post("/process", json=body, headers={KEY: key, "Accept": "text/event-stream"})
    events = [json.loads(line) for line in (await resp.read()).decode().splitlines()]
    assert events[-1]["type"] == "result"
    pid = json.loads(events[-1]["data"])["pid"]
    status, text, _ = await post_process(client, body, key, Accept="text/event-stream")
    assert status == 409
    error = json.loads(text)
    assert "stream" in error["error"] and error["pid"] == pid
    assert runs(counter) == 1


async def test_a_large_answer_is_replayed_exactly(client):
    body = {"command": "head -c 300000 /dev/zero | tr '\\0' 'x'; echo", "waitForCompletion": True, "timeout": 30}
    key = new_key()
    status, first, _ = await post_process(client, body, key)
    assert status == 200 and len(first) > 300000
    status, second, headers = await post_process(client, body, key)
    assert status == 200 and headers[REPLAYED] == "true" and second == first


async def test_a_refused_request_does_not_hold_its_key(client, tmp_path):
    key = new_key()
    status, text, _ = await post_process(client, {"command": 5}, key)  # invalid: nothing was done
    assert status == 400, text
    status, text, headers = await post_process(client, {"command": "true", "waitForCompletion": True}, key)
    assert status == 200 and REPLAYED not in headers


async def test_a_failed_start_is_replayed_too(client, tmp_path):
    """A 422 (the command was understood and could not start) is the first answer: kept."""
    body = {"command": "true", "workingDir": str(tmp_path / "missing"), "waitForCompletion": True}
    key = new_key()
    status, first, _ = await post_process(client, body, key)
    assert status == 422
    status, second, headers = await post_process(client, body, key)
    assert status == 422 and second == first and headers[REPLAYED] == "true"


@pytest.mark.parametrize("key", ["", "x" * 256, "bad key", "clé"])
async def test_an_invalid_key_is_400(client, key):
    resp = await client.post("/process", json={"command": "true"}, headers={KEY: key})
    assert resp.status == 400
    assert "Idempotency-Key" in (await resp.json())["error"]


# --- file writes --------------------------------------------------------------------------


def identity_of(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def multipart(content: bytes, boundary: str) -> tuple[bytes, str]:
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="permissions"\r\n\r\n0640\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


async def test_file_write_retries_write_once(client, workdir):
    cases = []
    # JSON
    cases.append(("/filesystem/a.txt", {"json": {"content": "hello"}}, {"json": {"content": "other"}}, "a.txt"))
    # raw bytes, with the permissions in the query
    raw = os.urandom(3 * 1024 * 1024)
    cases.append(
        (
            "/filesystem/b.bin?permissions=0600",
            {"data": raw, "headers": {"Content-Type": "application/octet-stream"}},
            {"data": raw[:-1] + b"!", "headers": {"Content-Type": "application/octet-stream"}},
            "b.bin",
        )
    )
    for url, same, other, name in cases:
        key = new_key()
        resp = await client.put(url, headers={KEY: key, **same.get("headers", {})}, **_body(same))
        assert resp.status == 200, await resp.text()
        first = await resp.read()
        before = identity_of(workdir / name)
        await asyncio.sleep(0.02)
        resp = await client.put(url, headers={KEY: key, **same.get("headers", {})}, **_body(same))
        assert resp.status == 200 and resp.headers[REPLAYED] == "true" and await resp.read() == first
        resp = await client.put(url, headers={KEY: key, **other.get("headers", {})}, **_body(other))
        assert resp.status == 422, url
        assert identity_of(workdir / name) == before
    assert (workdir / "a.txt").read_text() == "hello"
    assert (workdir / "b.bin").read_bytes() == raw


def _body(case: dict) -> dict:
    return {k: v for k, v in case.items() if k != "headers"}


async def test_a_multipart_retry_with_a_new_boundary_writes_once(client, workdir):
    content = os.urandom(2 * 1024 * 1024) + b"--edge"
    key = new_key()
    data, kind = multipart(content, "first-boundary-1234")
    resp = await client.put("/filesystem/m.bin", data=data, headers={KEY: key, "Content-Type": kind})
    assert resp.status == 200, await resp.text()
    before = identity_of(workdir / "m.bin")
    assert (workdir / "m.bin").stat().st_mode & 0o777 == 0o640
    data, kind = multipart(content, "another-boundary-98765")  # a client draws a new one per attempt
    resp = await client.put("/filesystem/m.bin", data=data, headers={KEY: key, "Content-Type": kind})
    assert resp.status == 200 and resp.headers[REPLAYED] == "true"
    data, kind = multipart(content + b"x", "another-boundary-98765")
    resp = await client.put("/filesystem/m.bin", data=data, headers={KEY: key, "Content-Type": kind})
    assert resp.status == 422
    assert identity_of(workdir / "m.bin") == before
    assert (workdir / "m.bin").read_bytes() == content


async def test_tree_copy_and_multipart_complete_retries_act_once(client, workdir):
    key = new_key()
    url = f"/filesystem/tree/{workdir}/t"
    resp = await client.put(url, json={"files": {"one.txt": "1", "sub/two.txt": "2"}}, headers={KEY: key})
    assert resp.status == 200
    first = await resp.read()
    before = identity_of(workdir / "t" / "sub" / "two.txt")
    resp = await client.put(url, json={"files": {"one.txt": "1", "sub/two.txt": "2"}}, headers={KEY: key})
    assert resp.status == 200 and resp.headers[REPLAYED] == "true" and await resp.read() == first
    assert identity_of(workdir / "t" / "sub" / "two.txt") == before

    key = new_key()
    copy = {"source": str(workdir / "t" / "one.txt"), "destination": str(workdir / "copy.txt"), "noOverwrite": True}
    resp = await client.post("/filesystem-copy", json=copy, headers={KEY: key})
    assert resp.status == 200
    before = identity_of(workdir / "copy.txt")
    resp = await client.post("/filesystem-copy", json=copy, headers={KEY: key})
    assert resp.status == 200 and resp.headers[REPLAYED] == "true"  # not a 409 "already exists"
    assert identity_of(workdir / "copy.txt") == before

    resp = await client.post(f"/filesystem-multipart/initiate/{workdir}/big.bin", json={})
    upload = (await resp.json())["uploadId"]
    form = aiohttp.FormData()
    form.add_field("file", b"abc", filename="part")
    resp = await client.put(f"/filesystem-multipart/{upload}/part?partNumber=1", data=form)
    etag = (await resp.json())["etag"]
    key = new_key()
    done = {"parts": [{"partNumber": 1, "etag": etag}]}
    resp = await client.post(f"/filesystem-multipart/{upload}/complete", json=done, headers={KEY: key})
    assert resp.status == 200
    first = await resp.read()
    resp = await client.post(f"/filesystem-multipart/{upload}/complete", json=done, headers={KEY: key})
    assert resp.status == 200 and resp.headers[REPLAYED] == "true" and await resp.read() == first  # not a 404
    assert (workdir / "big.bin").read_bytes() == b"abc"


# --- the window and the cap ------------------------------------------------------------------


@pytest_asyncio.fixture
async def short_client(settings):
    app = build_app(replace(settings, idempotency_seconds=2.0, idempotency_max_keys=3))
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_a_key_expires_after_the_window(short_client, tmp_path):
    counter = tmp_path / "count"
    body = {"command": f"echo run >> {counter}", "waitForCompletion": True}
    key = new_key()
    assert (await post_process(short_client, body, key))[0] == 200
    _, _, headers = await post_process(short_client, body, key)
    assert headers.get(REPLAYED) == "true" and runs(counter) == 1
    await asyncio.sleep(2.1)
    status, _, headers = await post_process(short_client, body, key)
    assert status == 200 and REPLAYED not in headers and runs(counter) == 2


async def test_keys_are_capped_oldest_first(short_client, tmp_path, settings):
    counter = tmp_path / "count"
    body = {"command": f"echo run >> {counter}", "waitForCompletion": True}
    keys = [new_key() for _ in range(4)]
    for key in keys:
        assert (await post_process(short_client, body, key))[0] == 200
    assert runs(counter) == 4
    _, _, headers = await post_process(short_client, body, keys[-1])
    assert headers.get(REPLAYED) == "true"
    _, _, headers = await post_process(short_client, body, keys[0])  # pushed out by the cap of 3
    assert REPLAYED not in headers
    journal = settings.state_dir / "idempotency.jsonl"
    assert journal.exists()


# --- across a daemon restart -------------------------------------------------------------------


def http(url: str, body: dict, key: str, timeout: float = 30) -> tuple[int, bytes, dict]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json", KEY: key}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


async def test_a_retry_after_a_daemon_restart_is_replayed(daemon_factory, tmp_path):
    counter = tmp_path / "count"
    body = {"command": f"echo run >> {counter}; echo out", "waitForCompletion": True}
    key = new_key()
    first = daemon_factory()
    first.start()
    status, answer, _ = await asyncio.to_thread(http, f"{first.url}/process", body, key)
    assert status == 200
    first.stop(signal.SIGKILL)  # no clean shutdown: the journal line was written when it answered
    second = daemon_factory(state_dir=first.state_dir)
    second.start()
    status, again, headers = await asyncio.to_thread(http, f"{second.url}/process", body, key)
    assert status == 200 and headers[REPLAYED] == "true" and again == answer
    assert runs(counter) == 1
    status, _, _ = await asyncio.to_thread(http, f"{second.url}/process", {**body, "name": "other"}, key)
    assert status == 422


async def test_a_request_cut_by_a_restart_never_starts_its_process_twice(daemon_factory, tmp_path):
    counter = tmp_path / "count"
    body = {"command": f"echo run >> {counter}; sleep 30", "waitForCompletion": True}
    key = new_key()
    first = daemon_factory()
    first.start()
    waiting = asyncio.ensure_future(asyncio.to_thread(http, f"{first.url}/process", body, key, 60))
    await wait_for(counter.exists, timeout=10)
    first.stop(signal.SIGKILL)
    try:
        await waiting
    except OSError:
        pass  # the connection was cut: the client would retry
    second = daemon_factory(state_dir=first.state_dir)
    second.start()
    status, text, _ = await asyncio.to_thread(http, f"{second.url}/process", body, key)
    assert status == 409, text
    error = json.loads(text)
    assert "interrupted (by a daemon restart" in error["error"]
    assert pid_alive(int(error["pid"]))  # the first run goes on, adopted
    time.sleep(0.2)
    assert runs(counter) == 1
    os.kill(int(error["pid"]), signal.SIGKILL)


async def test_the_header_is_documented_on_the_keyed_routes(client):
    document = await (await client.get("/openapi.json")).json()

    def headers(path: str, method: str) -> set[str]:
        return {p["name"] for p in document["paths"][path][method].get("parameters", []) if p["in"] == "header"}

    for path, method in (
        ("/process", "post"),
        ("/filesystem/{path}", "put"),
        ("/filesystem/tree/{path}", "put"),
        ("/filesystem-copy", "post"),
        ("/filesystem-multipart/{uploadId}/complete", "post"),
    ):
        assert KEY in headers(path, method), path
        assert "409" in document["paths"][path][method]["responses"]
    assert KEY not in headers("/filesystem/{path}", "delete")


async def test_a_zero_window_turns_keys_off(settings, tmp_path):
    app = build_app(replace(settings, idempotency_seconds=0.0))
    counter = tmp_path / "count"
    body = {"command": f"echo run >> {counter}", "waitForCompletion": True}
    async with TestClient(TestServer(app)) as c:
        key = new_key()
        for _ in range(2):
            status, _, headers = await post_process(c, body, key)
            assert status == 200 and REPLAYED not in headers
    assert runs(counter) == 2
    assert not (settings.state_dir / "idempotency.jsonl").exists()


async def test_the_journal_drops_expired_and_released_keys(settings, tmp_path):
    """Restarted on the same state dir, the journal is rewritten with the live keys only."""
    short = replace(settings, idempotency_seconds=3.0)  # a margin for the restart on a loaded machine
    journal = settings.state_dir / "idempotency.jsonl"
    body = {"command": "echo hi", "waitForCompletion": True}
    async with TestClient(TestServer(build_app(short))) as c:
        old, refused = new_key(), new_key()
        assert (await post_process(c, body, old))[0] == 200
        assert (await post_process(c, {"command": 5}, refused))[0] == 400
        assert old in journal.read_text() and refused not in journal.read_text()
        await asyncio.sleep(3.2)
        fresh = new_key()
        assert (await post_process(c, body, fresh))[0] == 200
    async with TestClient(TestServer(build_app(short))) as c:
        lines = [json.loads(line) for line in journal.read_text().splitlines()]
        assert [line["k"] for line in lines] == [fresh]
        _, _, headers = await post_process(c, body, fresh)
        assert headers.get(REPLAYED) == "true"
