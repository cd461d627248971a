"""POST /upgrade: fetch a new sandbox-api binary, prove it runs, and become it.

The reply goes out first; half a second later, in the background:
1. download `<baseUrl>/latest/download/sandbox-api-linux-<arch>` (or
   `<baseUrl>/download/<version>/...`), or copy a local file (`path`), next to the
   running binary;
2. validate: an ELF file between 1 KiB and 500 MiB that answers `--version` and serves
   `/health` on a spare port (with a scratch state directory);
3. rename it over the running binary, shut the daemon down cleanly (records and log
   indexes are saved, as for any restart) and exec it with the same arguments.

Supervised processes keep running: the new daemon adopts them like after any restart.
Any failure leaves the old daemon serving; `lastUpgrade` in /health and the log say why.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from .. import bundle, config, outbound
from ..errors import Conflict
from ..linux.children import Children
from .health import Health, UpgradeStatus

log = logging.getLogger("sandbox_api.upgrade")

DEFAULT_BASE_URL = "https://github.com/blaxel-ai/sandbox/releases"
STATE_VARIABLE = "SANDBOX_UPGRADE_STATE"  # the outcome, handed to the new daemon
COUNT_VARIABLE = "SANDBOX_UPGRADE_COUNT"
START_DELAY = 0.5
ATTEMPTS = 4
MIN_SIZE = 1024
MAX_SIZE = 500 * 1024 * 1024
VALIDATE_SECONDS = 30.0
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class UpgradeFailed(Exception):
    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


@dataclass(frozen=True)
class ExecRequest:
    """What to exec once the daemon has shut down."""

    path: str
    argv: list[str]
    env: dict[bytes, bytes]


def running_binary() -> str | None:
    """The file this daemon was started from, when it is the one-file binary."""
    if not bundle.FROZEN:
        return None
    return sys.executable


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def status_from_previous_life() -> UpgradeStatus:
    """The outcome the daemon that exec'd us left in the environment (then forgotten)."""
    raw = config.take_variable(STATE_VARIABLE)
    try:
        saved = json.loads(raw) if raw else {}
        return UpgradeStatus(**saved)
    except (ValueError, TypeError):
        return UpgradeStatus()


def cannot_upgrade() -> str | None:
    """Why this install can never upgrade in place, or None."""
    if config.get_variable("SANDBOX_DEV_MODE") in ("true", "1"):
        return "upgrades are disabled in dev mode (SANDBOX_DEV_MODE)"
    if running_binary() is None:
        return "not running from the sandbox-api binary (a Python install upgrades with pip)"
    return None


class Upgrader:
    def __init__(self, health: Health, children: Children, request_stop: Callable[[], None], token: str = "") -> None:
        self.health = health
        self._token = token  # off our command line and environment (cli.py): handed on here
        self.children = children
        self._request_stop = request_stop
        self._task: asyncio.Task[None] | None = None
        self.exec_request: ExecRequest | None = None

    @property
    def status(self) -> UpgradeStatus:
        return self.health.last_upgrade

    def start(self, version: str, base_url: str, path: str | None) -> dict[str, str]:
        if self._task is not None and not self._task.done():
            raise Conflict("an upgrade is already running")
        reason = cannot_upgrade()
        if reason is not None:  # refused at once: an upgrade that can never happen is not "initiated"
            raise Conflict(f"cannot upgrade: {reason}")
        self.health.last_upgrade = UpgradeStatus(
            status="running", step="starting", version=version, last_attempt=_now()
        )
        self._task = asyncio.get_running_loop().create_task(self._run(version, base_url, path))
        return {
            "message": "Upgrade initiated. Process state saved. The server will upgrade shortly.",
            "version": version,
            "baseUrl": base_url,
        }

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, version: str, base_url: str, path: str | None) -> None:
        await asyncio.sleep(START_DELAY)
        staged = None
        try:
            target = running_binary()
            reason = cannot_upgrade()
            if reason is not None or target is None:  # (checked at start too; the install may have changed)
                raise UpgradeFailed("skipped", reason or "not running from the sandbox-api binary")
            staged = os.path.join(os.path.dirname(target), f".sandbox-api-upgrade-{os.getpid()}")
            self.status.step = "download"
            if path:
                self.status.binary_path = path
                await asyncio.to_thread(_copy, path, staged)
            else:
                url = download_url(base_url, version)
                self.status.download_url = url
                await self._download(url, staged)
            self.status.step = "validate"
            await asyncio.to_thread(_check_file, staged)
            await validate_binary(self.children, staged)
            self.status.step = "replace"
            os.chmod(staged, 0o755)
            os.replace(staged, target)
            staged = None
        except UpgradeFailed as e:
            self._fail(e.step, str(e))
            return
        except OSError as e:
            self._fail(self.status.step, str(e))
            return
        finally:
            if staged is not None:
                try:
                    os.unlink(staged)
                except OSError:
                    pass
        done = UpgradeStatus(
            status="completed",
            step="completed",
            version=version,
            last_attempt=self.status.last_attempt,
            download_url=self.status.download_url,
            binary_path=self.status.binary_path,
            bytes_downloaded=self.status.bytes_downloaded,
        )
        # The daemon's next life keeps its own settings (the token too), except the tunnel's:
        # the tunnel is up and outlives the exec, and applying it again would replace it.
        env = config.runtime_environment()
        env.pop(b"BL_NETWORKING_CONFIG", None)
        env[COUNT_VARIABLE.encode()] = str(self.health.upgrade_count + 1).encode()
        env[STATE_VARIABLE.encode()] = json.dumps(done.__dict__).encode()
        if self._token:  # in the environment (readable by our user only), not in argv (by all)
            env[config.TOKEN_VARIABLE.encode()] = os.fsencode(self._token)
        self.exec_request = ExecRequest(target, [target, *sys.argv[1:]], env)
        log.info("upgrade to %s validated; restarting as %s", version, target)
        self._request_stop()

    def _fail(self, step: str, message: str) -> None:
        self.status.status = "failed"
        self.status.step = step
        self.status.error = message
        log.error("upgrade failed at %s: %s", step, message)

    async def _download(self, url: str, staged: str) -> None:
        """Four attempts with exponential backoff and jitter; 403, 429 and 5xx are retried,
        honouring Retry-After. One call site, so no retry library for it."""
        timeout = aiohttp.ClientTimeout(total=300, sock_connect=10)
        last = ""
        delay = 1.0
        async with await outbound.session(timeout=timeout) as session:
            for attempt in range(ATTEMPTS):
                if attempt:
                    await asyncio.sleep(delay)
                delay = min(30.0, 2**attempt) * (0.5 + random.random())
                try:
                    async with session.get(url) as response:
                        if response.status in (403, 429) or response.status >= 500:
                            last = f"HTTP {response.status}"
                            delay = _retry_after(response.headers.get("Retry-After"), delay)
                            continue
                        if response.status != 200:
                            raise UpgradeFailed("download", f"GET {url}: HTTP {response.status}")
                        expected = response.content_length
                        received = await _save(response, staged, self.status)
                        if expected is not None and received != expected:
                            last = f"short download: {received} of {expected} bytes"
                            continue
                        return
                except (TimeoutError, aiohttp.ClientError) as e:
                    last = str(e) or type(e).__name__
        raise UpgradeFailed("download", f"GET {url} failed after {ATTEMPTS} attempts: {last}")


def download_url(base_url: str, version: str) -> str:
    arch = _ARCH.get(platform.machine().lower(), platform.machine().lower())
    name = f"sandbox-api-linux-{arch}"
    base = base_url.rstrip("/")
    if version in ("", "latest"):
        return f"{base}/latest/download/{name}"
    return f"{base}/download/{version}/{name}"


def _retry_after(value: str | None, default: float) -> float:
    try:
        return min(60.0, max(0.0, float(value))) if value else default
    except ValueError:
        return default


async def _save(response: aiohttp.ClientResponse, staged: str, status: UpgradeStatus) -> int:
    received = 0
    with open(staged, "wb") as f:
        async for chunk in response.content.iter_chunked(1 << 20):
            received += len(chunk)
            if received > MAX_SIZE:
                raise UpgradeFailed("download", f"the download exceeds {MAX_SIZE} bytes")
            f.write(chunk)
            status.bytes_downloaded = received
        f.flush()
        os.fsync(f.fileno())
    return received


def _copy(source: str, staged: str) -> None:
    if not os.path.isfile(source):
        raise UpgradeFailed("download", f"{source} is not a file")
    shutil.copyfile(source, staged)
    with open(staged, "rb+") as f:
        os.fsync(f.fileno())


def _check_file(path: str) -> None:
    size = os.path.getsize(path)
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UpgradeFailed("validate", f"the new binary is {size} bytes (expected {MIN_SIZE} to {MAX_SIZE})")
    with open(path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            raise UpgradeFailed("validate", "the new binary is not an ELF executable")


async def validate_binary(children: Children, path: str) -> None:
    """It must answer --version and serve /health (scratch state, spare port)."""
    os.chmod(path, 0o755)
    env = config.child_environment()
    scratch = tempfile.mkdtemp(prefix="sandbox-api-validate-")
    try:
        await _answers_version(children, path, env, scratch)
        await _serves_health(children, path, env, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def _answers_version(children: Children, path: str, env: dict[bytes, bytes], cwd: str) -> None:
    try:
        done = await children.run([path, "--version"], timeout=VALIDATE_SECONDS, cwd=cwd, env=env)
    except TimeoutError:  # before OSError, of which it is a subclass
        raise UpgradeFailed("validate", "the new binary does not run: --version timed out") from None
    except OSError as e:
        raise UpgradeFailed("validate", f"the new binary does not run: {e}") from None
    out, err, code = done.stdout, done.stderr, done.returncode
    if code != 0 or not out.startswith(b"sandbox-api"):
        text = (out + err).decode("utf-8", "replace").strip()[:500]
        raise UpgradeFailed("validate", f"the new binary does not run: --version exited {code}: {text}")


async def _serves_health(children: Children, path: str, env: dict[bytes, bytes], scratch: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **env,
        b"SANDBOX_STATE_DIR": scratch.encode(),
        b"DISABLE_REQUEST_LOGGING": b"true",
        b"SANDBOX_UPGRADE_COUNT": b"0",
    }
    try:
        trial = children.spawn(
            [path, "--host", "127.0.0.1", "-p", str(port)],
            env=env,
            cwd=scratch,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except OSError as e:
        raise UpgradeFailed("validate", f"the new binary does not run: {e}") from None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            deadline = time.monotonic() + VALIDATE_SECONDS
            while True:
                if trial.returncode is not None:
                    raise UpgradeFailed(
                        "validate", f"the new binary exited with {trial.returncode} before serving /health"
                    )
                try:
                    async with session.get(f"http://127.0.0.1:{port}/health") as response:
                        if response.status == 200 and (await response.json()).get("status") == "ok":
                            return
                except (TimeoutError, aiohttp.ClientError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise UpgradeFailed(
                        "validate", f"the new binary did not serve /health within {VALIDATE_SECONDS:g} s"
                    )
                await asyncio.sleep(0.1)
    finally:
        if trial.returncode is None:
            os.kill(trial.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(trial.wait(), 15)
            except TimeoutError:
                os.kill(trial.pid, signal.SIGKILL)
                await trial.wait()
