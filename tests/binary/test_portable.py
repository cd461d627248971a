"""The static binary runs where there is no Python and no libc of ours: as PID 1 in a
busybox-only root and in a Debian minbase root, and entrypoint.sh runs it under
busybox sh, dash and bash."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request

import pytest

from .conftest import BINARY, Chroot, wait_healthy

pytestmark = pytest.mark.timeout(180)


def call(port: int, method: str, path: str, body: dict | bytes | None = None, timeout: float = 30):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if isinstance(body, dict):
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        payload = response.read()
        return response.status, json.loads(payload) if response.headers.get_content_type() == "application/json" else payload


def exercise(chroot: Chroot, port: int) -> None:
    """/health, a process, a file written and read, a watch event, a content search."""
    work = f"/{chroot.scratch}/work"
    status, health = call(port, "GET", "/health")
    assert status == 200 and health["status"] == "ok"

    _, done = call(port, "POST", "/process", {"command": "echo hello-$((6 * 7)); env", "waitForCompletion": True})
    assert done["status"] == "completed" and done["exitCode"] == 0, done
    assert done["stdout"].startswith("hello-42\n")
    # The bootloaders' variables do not reach the user's commands.
    for leaked in ("LD_LIBRARY_PATH", "_PYI_", "_MEI", "STATICX_", "SSL_CERT_FILE"):
        assert leaked not in done["stdout"], done["stdout"]

    status, _ = call(port, "PUT", f"/filesystem{work}/notes/a.txt", {"content": "the needle is here\n"})
    assert status == 200
    _, content = call(port, "GET", f"/filesystem{work}/notes/a.txt")
    assert content["content"] == "the needle is here\n"

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/watch/filesystem{work}/**", timeout=30) as stream:
        assert stream.readline().strip() == b"[keepalive]"  # armed
        call(port, "PUT", f"/filesystem{work}/notes/b.txt", {"content": "x"})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = stream.readline()
            if b"b.txt" in line:
                assert json.loads(line)["op"] in ("CREATE", "WRITE")
                break
        else:
            raise AssertionError("no watch event")

    _, found = call(port, "GET", f"/filesystem-content-search{work}?query=needle")
    assert [m["path"] for m in found["matches"]] == ["notes/a.txt"], found  # relative to the searched dir


def run_daemon(chroot: Chroot, port: int, **env: str):
    pid1 = chroot.start(["/usr/local/bin/sandbox-api", "--host", "127.0.0.1", "-p", str(port)], chroot.env(port, **env))
    return pid1


def test_busybox_root_as_pid1(busybox_root: Chroot, port: int):
    # Where Alpine and Debian keep their CA bundle; the bundled OpenSSL looks in /usr/lib/ssl.
    (busybox_root.root / "etc/ssl/certs").mkdir(parents=True)
    (busybox_root.root / "etc/ssl/certs/ca-certificates.crt").write_bytes(b"")
    pid1 = run_daemon(busybox_root, port)
    try:
        wait_healthy(port, pid1)
        assert "TLS roots: /etc/ssl/certs/ca-certificates.crt" in pid1.output()
        exercise(busybox_root, port)  # and SSL_CERT_FILE, set for the daemon, is not in children's env
        # A process that forks a background child and exits: the orphan is reaped.
        _, done = call(port, "POST", "/process", {"command": "sleep 0.2 & echo $!", "waitForCompletion": True})
        orphan = int(done["stdout"].split()[0])
        deadline = time.monotonic() + 10  # the orphan sweep runs every second
        while [p for p in os.listdir("/proc") if p.isdigit() and zombie_with_ns_pid(p, orphan)]:
            assert time.monotonic() < deadline, "an orphan stayed a zombie"
            time.sleep(0.2)
        assert pid1.terminate() == 0, pid1.output()
    finally:
        pid1.kill()
    assert busybox_root.leftovers() == [], pid1.output()


def zombie_with_ns_pid(host_pid: str, ns_pid: int) -> bool:
    try:
        status = open(f"/proc/{host_pid}/status").read()
    except OSError:
        return False
    ns_line = next((line for line in status.splitlines() if line.startswith("NSpid:")), "")
    return "State:\tZ" in status and ns_line.split()[-1] == str(ns_pid) and len(ns_line.split()) > 2


def test_debian_minbase_root_as_pid1(debian_chroot: Chroot, port: int):
    pid1 = run_daemon(debian_chroot, port)
    try:
        wait_healthy(port, pid1)
        exercise(debian_chroot, port)
        # A glibc program of the image still finds the image's libraries, not ours.
        _, done = call(port, "POST", "/process", {"command": "ldd /bin/ls", "waitForCompletion": True})
        assert done["exitCode"] == 0 and "/lib/x86_64-linux-gnu/libc.so.6" in done["stdout"], done
        assert "/tmp/" not in done["stdout"] and "_MEI" not in done["stdout"]
        assert pid1.terminate() == 0, pid1.output()
    finally:
        pid1.kill()
    assert debian_chroot.leftovers() == [], pid1.output()


def test_version_and_stale_extractions_are_removed(busybox_root: Chroot, port: int):
    version = subprocess.run([str(BINARY), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("sandbox-api "), version
    stale = busybox_root.tmp / "_MEIstale123"
    (stale / "sub").mkdir(parents=True)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = busybox_root.tmp / "staticx-fresh1"  # may be a bootloader still unpacking
    fresh.mkdir()
    pid1 = run_daemon(busybox_root, port)
    try:
        wait_healthy(port, pid1)
        deadline = time.monotonic() + 20
        while stale.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not stale.exists()
        assert fresh.exists()
        assert pid1.terminate() == 0
    finally:
        pid1.kill()
    assert busybox_root.leftovers() == ["staticx-fresh1"]


@pytest.mark.parametrize("tmpdir_case", ["missing", "read-only", "noexec"])
def test_an_unusable_temp_dir_is_named(busybox_root: Chroot, port: int, tmpdir_case: str):
    mounts = {
        "missing": "",
        "read-only": 'mkdir -p "$R/ro" && mount -t tmpfs -o ro tmpfs "$R/ro"',
        "noexec": 'mkdir -p "$R/nx" && mount -t tmpfs -o noexec,mode=1777 tmpfs "$R/nx"',
    }[tmpdir_case]
    tmpdir = {"missing": "/does-not-exist", "read-only": "/ro", "noexec": "/nx"}[tmpdir_case]
    # The bare binary: its bootloader fails and says where.
    pid1 = busybox_root.start(["/usr/local/bin/sandbox-api", "-p", str(port)], busybox_root.env(port, TMPDIR=tmpdir), mounts)
    assert pid1.wait(60) != 0
    assert tmpdir in pid1.output()
    # entrypoint.sh checks first and says what to do.
    pid1 = busybox_root.start(["/bin/sh", f"/{busybox_root.scratch}/entrypoint.sh"], busybox_root.env(port, TMPDIR=tmpdir), mounts)
    assert pid1.wait(60) == 1
    message = pid1.output()
    expected = {"missing": "does not exist", "read-only": "is not writable", "noexec": "is mounted noexec"}[tmpdir_case]
    assert f"temp dir {tmpdir} {expected}" in message, message
    assert "TMPDIR" in message


def entrypoint_run(chroot: Chroot, port: int, shell: str) -> None:
    env = chroot.env(
        port,
        SANDBOX_START_COMMAND="echo started-by-entrypoint; exec sleep 300",
        SANDBOX_START_NAME="app",
    )
    pid1 = chroot.start([shell, f"/{chroot.scratch}/entrypoint.sh", "--host", "127.0.0.1"], env)
    try:
        wait_healthy(port, pid1, timeout=60)
        deadline = time.monotonic() + 30
        while True:
            _, processes = call(port, "GET", "/process")
            app = next((p for p in processes if p["name"] == "app"), None)
            if app and "started-by-entrypoint" in (app.get("logs") or ""):
                break
            assert time.monotonic() < deadline, (processes, pid1.output())
            time.sleep(0.1)
        assert app["status"] == "running"
        status, _ = call(port, "POST", "/process", {"command": "echo via-api", "waitForCompletion": True})
        assert status == 200
        # docker stop: SIGTERM to PID 1 (the shell); it stops the daemon and exits with it.
        assert pid1.terminate() == 0, pid1.output()
    finally:
        pid1.kill()
    assert chroot.leftovers() == [], pid1.output()


def test_entrypoint_under_busybox_sh(busybox_root: Chroot, port: int):
    entrypoint_run(busybox_root, port, "/bin/sh")


@pytest.mark.parametrize("shell", ["/bin/dash", "/bin/bash"])
def test_entrypoint_under_dash_and_bash(debian_chroot: Chroot, port: int, shell: str):
    entrypoint_run(debian_chroot, port, shell)
