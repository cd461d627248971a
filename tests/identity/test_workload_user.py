"""The workload user (`--user`, or BL_SANDBOX_USER with BL_SANDBOX_USER_ENABLED): a real
daemon running as root, with `nobody` as the workload user."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import stat

import aiohttp
import pytest

from ..conftest import Daemon

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root"),
]
NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def shared(tmp_path):
    """A working directory the workload user may write, and a root-only corner."""
    for directory in (tmp_path, *tmp_path.parents):  # pytest's 0700 base directories
        if str(directory) in ("/", "/tmp"):
            break
        os.chmod(directory, 0o755)
    work = tmp_path / "work"
    work.mkdir()
    os.chown(work, NOBODY.pw_uid, NOBODY.pw_gid)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "secret.txt").write_text("root only needle\n")
    os.chmod(private / "secret.txt", 0o600)
    (work / "public.txt").write_text("shared needle\n")
    os.chmod(work / "public.txt", 0o644)
    root_file = work / "root-only.txt"
    root_file.write_text("hidden needle\n")
    os.chmod(root_file, 0o600)
    return tmp_path


async def run(http: aiohttp.ClientSession, url: str, command: str, **extra) -> dict:
    async with http.post(f"{url}/process", json={"command": command, "waitForCompletion": True, **extra}) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_processes_files_search_and_terminal_act_as_the_user(shared):
    work = shared / "work"
    daemon = Daemon(shared / "state", work, args=["--user", "nobody"])
    daemon.start()
    try:
        async with aiohttp.ClientSession() as http:
            url = daemon.url
            result = await run(
                http,
                url,
                "id -un; id -u; id -G; echo $HOME:$USER:$LOGNAME",
                env={"HOME": "/root", "USER": "root"},
                user="root",
            )
            name, uid, groups, env = result["stdout"].splitlines()
            assert (name, int(uid)) == ("nobody", NOBODY.pw_uid)
            assert sorted(map(int, groups.split())) == sorted(set(os.getgrouplist("nobody", NOBODY.pw_gid)))
            assert env == f"{NOBODY.pw_dir}:nobody:nobody"  # forced over the request's env

            # Files the API creates belong to the user, whatever the way they are written.
            async with http.put(f"{url}/filesystem/{work}/json.txt", json={"content": "a"}) as r:
                assert r.status == 200, await r.text()
            async with http.put(f"{url}/filesystem/{work}/dir/sub", json={"isDirectory": True}) as r:
                assert r.status == 200, await r.text()
            async with http.put(
                f"{url}/filesystem/{work}/raw.bin",
                data=b"\0" * 1000,
                headers={"Content-Type": "application/octet-stream"},
            ) as r:
                assert r.status == 200, await r.text()
            async with http.post(f"{url}/filesystem-multipart/initiate/{work}/multi.bin", json={}) as r:
                upload = (await r.json())["uploadId"]
            form = aiohttp.FormData()
            form.add_field("file", b"part-one", filename="blob")
            async with http.put(f"{url}/filesystem-multipart/{upload}/part?partNumber=1", data=form) as r:
                etag = (await r.json())["etag"]
            async with http.post(
                f"{url}/filesystem-multipart/{upload}/complete", json={"parts": [{"partNumber": 1, "etag": etag}]}
            ) as r:
                assert r.status == 200, await r.text()
            for created in ("json.txt", "dir", "dir/sub", "raw.bin", "multi.bin"):
                info = os.stat(work / created)
                assert (info.st_uid, info.st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid), created

            # The kernel checks permissions as the user.
            async with http.get(f"{url}/filesystem/{shared}/private/secret.txt") as r:
                assert r.status == 500, await r.text()  # a failed stat is 500, as in the original
                assert "permission denied" in (await r.json())["error"]
            async with http.put(f"{url}/filesystem/{shared}/private/new.txt", json={"content": "x"}) as r:
                assert r.status == 422 and "permission denied" in (await r.json())["error"]
            assert not (shared / "private" / "new.txt").exists()
            async with http.delete(f"{url}/filesystem/{work}/root-only.txt") as r:
                assert r.status == 200  # a directory it owns: it may unlink, as the kernel says
            async with http.get(f"{url}/filesystem-content-search/{work}", params={"query": "needle"}) as r:
                found = [m["path"] for m in (await r.json())["matches"]]
            assert found == ["public.txt"]

            # The terminal's shell too, on a tty the user owns.
            async with http.ws_connect(f"{url}/terminal/ws?sessionId=who&workingDir={work}") as ws:
                await ws.send_str(json.dumps({"type": "input", "data": "echo U=$(id -un) T=$(stat -c %U $(tty))\r"}))
                text = ""
                while not re.search(r"U=\w+ T=\w+", text):
                    message = await ws.receive(timeout=10)
                    text += json.loads(message.data)["data"]
                assert re.search(r"U=(\w+) T=(\w+)", text).groups() == ("nobody", "nobody")

            # The daemon itself keeps its rights.
            status = open(f"/proc/{daemon.proc.pid}/status").read()
            assert re.search(r"^Uid:\s+0\s", status, re.MULTILINE)
            log_file = next((shared / "state" / "logs").glob("*.stdout.log"))
            assert os.stat(log_file).st_uid == 0
    finally:
        daemon.stop()


async def test_environment_variables_enable_it(shared):
    daemon = Daemon(
        shared / "state",
        shared / "work",
        env={"BL_SANDBOX_USER": f"{NOBODY.pw_uid}:{NOBODY.pw_gid}", "BL_SANDBOX_USER_ENABLED": "true"},
    )
    daemon.start()
    try:
        async with aiohttp.ClientSession() as http:
            assert (await run(http, daemon.url, "id -u"))["stdout"].strip() == str(NOBODY.pw_uid)
    finally:
        daemon.stop()
    # Without BL_SANDBOX_USER_ENABLED the variable alone does nothing.
    daemon = Daemon(shared / "state2", shared / "work", env={"BL_SANDBOX_USER": "nobody"})
    daemon.start()
    try:
        async with aiohttp.ClientSession() as http:
            assert (await run(http, daemon.url, "id -u"))["stdout"].strip() == "0"
    finally:
        daemon.stop()


@pytest.mark.parametrize(
    "spec, message",
    [
        ("root", "must not be root"),
        ("0", "must not be root"),
        ("no-such-user", "unknown user"),
        ("nobody:no-such-group", "unknown group"),
    ],
)
async def test_a_bad_user_is_fatal(shared, spec, message):
    daemon = Daemon(shared / "state", shared / "work", args=["--user", spec])
    with pytest.raises(RuntimeError, match="daemon exited"):
        daemon.start()
    assert daemon.proc.wait(10) == 1
    assert message in daemon.log()
    await asyncio.sleep(0)


def test_identity_resolution():
    from sandbox_api.identity import resolve

    who = resolve("nobody")
    assert (who.uid, who.gid, who.home) == (NOBODY.pw_uid, NOBODY.pw_gid, NOBODY.pw_dir)
    assert resolve(f"{NOBODY.pw_uid}").name == "nobody"
    assert resolve("4242:4343").uid == 4242 and resolve("4242:4343").gid == 4343  # unknown uids are allowed
    assert stat.S_IMODE(0o644) == 0o644
