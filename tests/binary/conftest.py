"""The static binary, run as PID 1 of a fresh PID and mount namespace, chrooted into
root filesystems that have no Python: one holding only busybox, one Debian minbase.

`make test` builds both first (`make binary rootfs`); the fixtures build what is
missing, under a lock (pytest-xdist runs several workers).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from ..conftest import ROOT, free_port

BINARY = ROOT / "dist" / "sandbox-api"
DEBIAN_ROOT = ROOT / "build" / "rootfs" / "debian-minbase"
ENTRYPOINT = ROOT / "entrypoint.sh"
BUSYBOX = shutil.which("busybox")


@contextmanager
def build_lock():
    (ROOT / "build").mkdir(exist_ok=True)
    with open(ROOT / "build" / ".test-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def require_root() -> None:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("chroot"):
        pytest.skip("needs root, unshare and chroot")


@pytest.fixture(scope="session")
def binary() -> Path:
    require_root()
    with build_lock():
        if not BINARY.exists():
            subprocess.run(["make", "binary"], cwd=ROOT, check=True, timeout=1200)
    return BINARY


@pytest.fixture(scope="session")
def debian_root() -> Path:
    require_root()
    with build_lock():
        if not (DEBIAN_ROOT / ".complete").exists():
            if not shutil.which("debootstrap"):
                pytest.skip("debootstrap is not installed (make test installs it)")
            subprocess.run(["make", "rootfs"], cwd=ROOT, check=True, timeout=1200)
    return DEBIAN_ROOT


class Chroot:
    """A root filesystem and how to run one command in it as PID 1."""

    def __init__(self, root: Path, scratch: str, make_tmp: bool = True) -> None:
        self.root = root
        self.scratch = scratch  # a directory of this test inside the root: /<scratch>
        self.inside = root / scratch
        self.inside.mkdir(parents=True, exist_ok=True)
        self.tmp = self.inside / "tmp"
        self.work = self.inside / "work"
        self.work.mkdir(exist_ok=True)
        for d in ("proc", "dev", "usr/local/bin"):
            (root / d).mkdir(parents=True, exist_ok=True)
        if make_tmp:
            self.tmp.mkdir(mode=0o1777, exist_ok=True)
            (root / "tmp").mkdir(exist_ok=True)

    def install(self, binary: Path) -> None:
        target = self.root / "usr/local/bin/sandbox-api"
        with build_lock():  # the Debian root is shared by the workers
            if not target.exists() or target.stat().st_mtime < binary.stat().st_mtime:
                shutil.copy2(binary, str(target) + ".tmp")
                os.replace(str(target) + ".tmp", target)
        shutil.copy2(ENTRYPOINT, self.inside / "entrypoint.sh")

    def env(self, port: int, **extra: str) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": "/root",
            "TMPDIR": f"/{self.scratch}/tmp",
            "SANDBOX_STATE_DIR": f"/{self.scratch}/state",
            "WORKDIR": f"/{self.scratch}/work",
            "SANDBOX_API_PORT": str(port),
            **extra,
        }

    def start(self, argv: list[str], env: dict[str, str], mounts: str = "") -> Pid1:
        """Run argv chrooted, as PID 1 of new PID and mount namespaces.

        `mounts` is shell run before the chroot, with $R set to the root (for tmpfs tests).
        """
        script = (
            'set -e; R="$1"; shift\n'
            'for d in null zero random urandom; do [ -e "$R/dev/$d" ] || : > "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done\n'
            'mount -t proc proc "$R/proc"\n'
            f"{mounts}\n"
            'exec chroot "$R" "$@"'
        )
        log = open(self.inside / f"pid1-{time.monotonic_ns()}.log", "w+b")
        proc = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--pid",
                "--fork",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                script,
                "sh",
                str(self.root),
                *argv,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return Pid1(proc, log)

    def leftovers(self) -> list[str]:
        return sorted(os.listdir(self.tmp))


class Pid1:
    def __init__(self, unshare: subprocess.Popen, log) -> None:
        self.unshare = unshare
        self.log_file = log

    def pid(self, timeout: float = 10.0) -> int:
        """The host pid of the namespace's PID 1 (unshare's child)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                children = Path(f"/proc/{self.unshare.pid}/task/{self.unshare.pid}/children").read_text().split()
            except OSError:
                children = []
            if children:
                return int(children[0])
            time.sleep(0.01)
        raise AssertionError("no PID 1 appeared")

    def terminate(self, timeout: float = 20.0) -> int:
        # Like docker stop: SIGTERM to PID 1 itself (unshare does not forward signals).
        os.kill(self.pid(), signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 20.0) -> int:
        try:
            return self.unshare.wait(timeout)
        except subprocess.TimeoutExpired:
            self.unshare.kill()
            self.unshare.wait()
            raise AssertionError(f"PID 1 did not exit in {timeout} s; output:\n{self.output()}") from None

    def output(self) -> str:
        self.log_file.flush()
        self.log_file.seek(0)
        return self.log_file.read().decode("utf-8", "replace")

    def kill(self) -> None:
        if self.unshare.poll() is None:
            try:
                os.kill(self.pid(timeout=1), signal.SIGKILL)
            except (OSError, AssertionError):
                pass
            self.unshare.kill()
            self.unshare.wait()


def wait_healthy(port: int, pid1: Pid1, timeout: float = 30.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if pid1.unshare.poll() is not None:
            raise AssertionError(f"exited early ({pid1.unshare.returncode}):\n{pid1.output()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"no /health in {timeout} s:\n{pid1.output()}")


@pytest.fixture
def busybox_root(tmp_path: Path, binary: Path) -> Chroot:
    """A root filesystem with only the binary and Debian's static busybox (as /bin/sh etc.)."""
    if not BUSYBOX:
        pytest.skip("busybox is not installed (make test installs busybox-static)")
    root = tmp_path / "busybox-root"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", root / "bin" / applet)
    chroot = Chroot(root, "t")
    chroot.install(binary)
    return chroot


@pytest.fixture
def debian_chroot(debian_root: Path, binary: Path, tmp_path: Path) -> Chroot:
    scratch = f"test-{os.getpid()}-{time.monotonic_ns()}"
    chroot = Chroot(debian_root, scratch)
    chroot.install(binary)
    yield chroot
    shutil.rmtree(chroot.inside, ignore_errors=True)


@pytest.fixture
def port() -> int:
    return free_port()
