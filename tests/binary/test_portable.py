"""The static binary runs where there is no Python and no libc of ours: as PID 1 in a
busybox-only root, in a Debian minbase root and in a read-only root with no /tmp,
writing nothing to any temp dir; entrypoint.sh runs it under busybox sh, dash and bash."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from .conftest import BINARY, BUSYBOX, Chroot, wait_healthy

pytestmark = pytest.mark.timeout(180)


def call(port: int, method: str, path: str, body: dict | bytes | None = None, timeout: float = 30):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if isinstance(body, dict):
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        payload = response.read()
        return response.status, json.loads(
            payload
        ) if response.headers.get_content_type() == "application/json" else payload


def exercise(chroot: Chroot, port: int) -> None:
    """/health, a process, a file written and read, a watch event, a content search."""
    work = f"/{chroot.scratch}/work"
    status, health = call(port, "GET", "/health")
    assert status == 200 and health["status"] == "ok"

    _, done = call(port, "POST", "/process", {"command": "echo hello-$((6 * 7)); env", "waitForCompletion": True})
    assert done["status"] == "completed" and done["exitCode"] == 0, done
    assert done["stdout"].startswith("hello-42\n")
    # Nothing of the daemon's runtime reaches the user's commands.
    for leaked in ("LD_LIBRARY_PATH", "_PYI_", "_MEI", "STATICX_", "SSL_CERT_FILE", "PYTHON"):
        assert leaked not in done["stdout"], done["stdout"]
    # A body of the wrong shape is refused by the contract's msgspec decoding (compiled in).
    with pytest.raises(urllib.error.HTTPError) as refused:
        call(port, "POST", "/process", {"command": 1})
    assert refused.value.code == 400
    assert json.loads(refused.value.read())["error"].startswith("invalid request body: field command must be")

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
    pid1 = run_daemon(busybox_root, port)
    try:
        wait_healthy(port, pid1)
        assert "TLS roots" not in pid1.output()  # loaded on the first outbound call, not at start
        exercise(busybox_root, port)
        # Nothing unpacked, nothing written to a temp dir while it runs.
        assert busybox_root.leftovers() == [] and os.listdir(busybox_root.root / "tmp") == []
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


def test_tls_roots_load_on_the_first_outbound_call(busybox_root: Chroot, port: int):
    # Where Alpine and Debian keep their CA bundle; the bundled OpenSSL looks in /usr/lib/ssl.
    (busybox_root.root / "etc/ssl/certs").mkdir(parents=True)
    shutil.copy2("/etc/ssl/certs/ca-certificates.crt", busybox_root.root / "etc/ssl/certs/ca-certificates.crt")
    pid1 = run_daemon(busybox_root, port)
    try:
        wait_healthy(port, pid1)
        assert "TLS roots" not in pid1.output()
        # An upgrade from an HTTPS address nobody serves: the download is tried (and
        # fails), so the roots are loaded first.
        status, _ = call(port, "POST", "/upgrade", {"version": "v9.9.9", "baseUrl": "https://127.0.0.1:9"})
        assert status == 200
        deadline = time.monotonic() + 20
        while "TLS roots: /etc/ssl/certs/ca-certificates.crt" not in pid1.output():
            assert time.monotonic() < deadline, pid1.output()
            time.sleep(0.1)
        status, health = call(port, "GET", "/health")  # still serving
        assert status == 200 and health["status"] == "ok"
    finally:
        pid1.kill()


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


def test_version_and_compiled_native_extensions():
    version = subprocess.run([str(BINARY), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("sandbox-api "), version
    done = subprocess.run([str(BINARY), "--build-info"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done
    info = json.loads(done.stdout)
    assert info["oneFile"] is True and info["gitCommit"] != "unknown" and info["buildTime"] != "unknown"
    assert info["moduleLoader"] == "ArchiveModules", info  # the boot importer, not zipimport (twice as slow)
    # The code dataclasses and attrs generate at import came from the table built with it.
    precompiled = info["precompiledSources"]
    assert precompiled["table"] > 100 and precompiled["answered"] > 50, precompiled
    # The C HTTP parser, rapidfuzz's C++ scorer... compiled into the executable, not
    # pure-Python fallbacks nor files loaded from somewhere.
    natives = info["nativeExtensions"]
    assert {"aiohttp._http_parser", "rapidfuzz.distance.metrics_cpp", "rapidfuzz.process_cpp_impl",
            "msgspec._core"} <= set(natives)  # fmt: skip
    for name, native in natives.items():
        assert native == {"compiled": True, "origin": "built-in"}, (name, native)


@pytest.mark.parametrize("tmpdir_case", ["missing", "read-only", "noexec", "full"])
def test_an_unusable_temp_dir_changes_nothing(busybox_root: Chroot, port: int, tmpdir_case: str):
    mounts = {
        "missing": "",
        "read-only": 'mkdir -p "$R/ro" && mount -t tmpfs -o ro tmpfs "$R/ro"',
        "noexec": 'mkdir -p "$R/nx" && mount -t tmpfs -o noexec,mode=1777 tmpfs "$R/nx"',
        "full": 'mkdir -p "$R/full" && mount -t tmpfs -o size=4k,mode=1777 tmpfs "$R/full" && : > "$R/full/x" '
        '&& (head -c 1M /dev/zero > "$R/full/fill" || true)',
    }[tmpdir_case]
    tmpdir = {"missing": "/does-not-exist", "read-only": "/ro", "noexec": "/nx", "full": "/full"}[tmpdir_case]
    pid1 = busybox_root.start(["/bin/sh", f"/{busybox_root.scratch}/entrypoint.sh", "--host", "127.0.0.1"],
                              busybox_root.env(port, TMPDIR=tmpdir), mounts)  # fmt: skip
    try:
        wait_healthy(port, pid1)
        _, done = call(port, "POST", "/process", {"command": "echo ok", "waitForCompletion": True})
        assert done["stdout"] == "ok\n", done
        assert pid1.terminate() == 0, pid1.output()
    finally:
        pid1.kill()


def test_read_only_root_without_tmp(tmp_path: Path, binary: Path, port: int):
    """Only the state dir is writable; there is no /tmp at all."""
    root = tmp_path / "ro-root"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    os.symlink("busybox", root / "bin" / "sh")
    chroot = Chroot(root, "t", make_tmp=False)
    chroot.install(binary)
    (root / "etc").mkdir()
    (root / "etc" / "motd").write_text("read me\n")
    for name in ("null", "zero", "random", "urandom"):
        (root / "dev" / name).touch()
    (root / "t" / "state").mkdir()
    mounts = 'mount --rbind "$R" "$R" && mount -o remount,bind,ro "$R" && mount -t tmpfs tmpfs "$R/t/state"'
    env = {k: v for k, v in chroot.env(port).items() if k != "TMPDIR"}
    pid1 = chroot.start(["/usr/local/bin/sandbox-api", "--host", "127.0.0.1", "-p", str(port)], env, mounts)
    try:
        wait_healthy(port, pid1)
        _, done = call(
            port, "POST", "/process", {"command": "echo hi; touch /t/work/x 2>&1 || true", "waitForCompletion": True}
        )
        assert done["stdout"].startswith("hi\n") and "Read-only file system" in done["stdout"], done
        _, content = call(port, "GET", "/filesystem//etc/motd")
        assert content["content"] == "read me\n"
        assert pid1.terminate() == 0, pid1.output()
    finally:
        pid1.kill()
    assert not (root / "tmp").exists()


def _fails_in_one_line(path: Path) -> str:
    started = time.monotonic()
    done = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and time.monotonic() - started < 10
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert str(path) in done.stderr, done.stderr
    return done.stderr


def test_a_truncated_or_damaged_binary_says_so(tmp_path: Path, binary: Path):
    data = binary.read_bytes()
    truncated = tmp_path / "truncated"
    # Cut in the code archive (the machine code comes first: a file cut short inside it
    # dies on a signal before any code of ours runs; entrypoint.sh names that case).
    truncated.write_bytes(data[: len(data) - 1_000_000])
    truncated.chmod(0o755)
    assert "truncated or damaged" in _fails_in_one_line(truncated)
    # Same size, but the code of one module overwritten: found when it is imported.
    damaged = tmp_path / "damaged"
    with zipfile.ZipFile(binary) as archive:
        info = archive.getinfo("sandbox_api/cli.pyc")
    header = info.header_offset  # from the start of the file (zipfile accounts for the ELF before it)
    assert data[header : header + 4] == b"PK\x03\x04"
    name_length, extra_length = struct.unpack("<HH", data[header + 26 : header + 30])
    body = header + 30 + name_length + extra_length
    damaged.write_bytes(data[:body] + b"\0" * 16 + data[body + 16 :])
    damaged.chmod(0o755)
    assert "damaged" in _fails_in_one_line(damaged)


def test_entrypoint_names_a_binary_cut_short(busybox_root: Chroot, port: int):
    target = busybox_root.root / "usr/local/bin/sandbox-api"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 3])  # inside the machine code
    pid1 = busybox_root.start(["/bin/sh", f"/{busybox_root.scratch}/entrypoint.sh"], busybox_root.env(port))
    assert pid1.wait(60) == 1
    assert "may be truncated or damaged" in pid1.output(), pid1.output()


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
