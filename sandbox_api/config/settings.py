"""The daemon's settings: one frozen object built once at start-up from the environment
and the flags, and passed down."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..identity import Identity
from ..identity import resolve as resolve_identity
from .environment import TOKEN_VARIABLE, resolve_command

KIB = 1024
MIB = 1024 * 1024

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


# Values that were not understood, each with what is used instead: logged once at start.
_problems: list[str] = []


def _env_bool(name: str, truths: frozenset[str] = _TRUE) -> bool:
    """Go's strconv.ParseBool truth values (or the narrower `truths` the original uses for
    this variable); anything else is false, and a value that is no boolean at all is reported."""
    raw = os.environ.get(name, "")
    if raw and raw not in _TRUE and raw not in _FALSE:
        _problems.append(f"{name}={raw} is not true or false: using false")
    return raw in truths


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        _problems.append(f"{name}={raw} is not a whole number: using {default}")
        return default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        _problems.append(f"{name}={raw} is not a number: using {default:g}")
        return default


_LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "warn": logging.WARNING,
               "error": logging.ERROR}  # fmt: skip


def log_level() -> tuple[int, str | None]:
    """SANDBOX_LOG_LEVEL (read before Settings: logging is set up first), and what to
    report when the value is not a level."""
    raw = _env("SANDBOX_LOG_LEVEL").strip()
    level = _LOG_LEVELS.get(raw.lower())
    if raw and level is None:
        return logging.INFO, f"SANDBOX_LOG_LEVEL={raw} is not debug, info, warning or error: using info"
    return level or logging.INFO, None


def _env_list(name: str) -> tuple[str, ...]:
    """A comma-separated list; blanks dropped."""
    return tuple(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * KIB
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _workdir() -> str:
    """WORKDIR: env `WORKDIR`, else the cwd, else `/` (filesystem.md §1)."""
    explicit = os.environ.get("WORKDIR", "").strip()
    if explicit:
        return explicit
    try:
        return os.getcwd()
    except OSError:
        return "/"


def _default_state_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/sandbox-api")
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "sandbox-api"


def _log_budget() -> int:
    """Total bytes all process log files may use (a share of RAM: logs often sit on tmpfs)."""
    explicit = os.environ.get("SANDBOX_MAX_LOG_BYTES_TOTAL", "").strip()
    if explicit:
        try:
            return max(0, int(explicit))
        except ValueError:
            _problems.append(
                f"SANDBOX_MAX_LOG_BYTES_TOTAL={explicit} is not a whole number: using SANDBOX_MAX_LOG_PERCENT"
            )
    percent = _env_int("SANDBOX_MAX_LOG_PERCENT", 10)
    percent = min(100, max(1, percent))
    total = _mem_total()
    return total * percent // 100 if total else 96 * MIB


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8080
    startup_command: str = ""
    auth_token: str = ""
    state_dir: Path = field(default_factory=_default_state_dir)
    log_dir: Path | None = None
    shell: str = "sh"
    shell_args: tuple[str, ...] = ("-c",)
    workdir: str = ""
    disable_request_logging: bool = False
    enable_processing_time: bool = False
    disable_terminal: bool = False
    disable_keepalive: bool = False
    scale_file: str = "/uk/libukp/scale_to_zero_disable"
    metadata_path: str = "/bl/metadata"
    upgrade_count: int = 0
    # Output caps (bytes).
    max_logs_response_bytes: int = 4 * MIB
    max_inline_log_bytes: int = 64 * KIB
    max_log_file_bytes: int = 32 * MIB
    max_log_bytes_total: int = 96 * MIB
    # Uploads: body limit for streamed uploads (0 = none), idle multipart sessions' TTL.
    max_upload_bytes: int = 0
    # Reads answered in one message (MCP fsReadFile/fsEditFile/codegenReadFileRange, codegen
    # fastapply) refuse files past this; the HTTP JSON read streams and has no limit.
    max_text_read_bytes: int = 128 * KIB
    # Exact edits (/edit/*, MCP fsTextEditor) read, change and write a whole file in memory:
    # files past this many bytes are refused with 413.
    max_edit_bytes: int = 10 * MIB
    upload_ttl_seconds: float = 24 * 3600.0
    # Content search: a run is stopped after this many seconds.
    search_timeout: float = 30.0
    # Seconds a stopped process gets between SIGTERM and SIGKILL of its tree.
    stop_grace_seconds: float = 10.0
    # Streams: seconds between keepalives.
    log_stream_keepalive: float = 30.0
    exec_stream_keepalive: float = 5.0
    shutdown_timeout: float = 10.0
    # The FUSE helper that mounts Blaxel drives (absent outside Blaxel's images).
    blfs_path: str = "/usr/local/bin/blfs"
    # The workload user processes run as and files are written as (None: the daemon's own).
    identity: Identity | None = None
    # The state dir's lock, inherited from the daemon that exec'ed us (in-place upgrade).
    state_lock_fd: int | None = None
    # SHELL when it named a program that is not there (then `shell` is /bin/sh).
    missing_shell: str = ""
    # Slow senders: the whole request head within this many seconds, and no pause longer
    # than this in a request body the daemon is waiting for (0 disables either).
    header_timeout: float = 30.0
    body_idle_timeout: float = 60.0
    # Browsers (http/origins.py): extra names accepted in Host on a loopback connection, and
    # origins treated as this server's own ("*" in either turns that check off).
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    # Shell sessions (sessions/): reaped after this many idle seconds; at most this many; a
    # command's output is answered whole up to session_inline_bytes (else head and tail), and
    # kept on disk up to session_max_output_bytes for reads by offset.
    session_idle_seconds: float = 1800.0
    session_max: int = 32
    session_inline_bytes: int = 32 * KIB
    session_max_output_bytes: int = 16 * MIB
    # Retry-safe requests (idempotency/): an Idempotency-Key is kept this many seconds after
    # its first request (0: the header is ignored), and at most this many keys at once.
    idempotency_seconds: float = 3600.0
    idempotency_max_keys: int = 4096
    # Environment values that were not understood, with what is used instead (logged at start).
    problems: tuple[str, ...] = ()

    @property
    def processes_dir(self) -> Path:
        return self.state_dir / "processes"

    @property
    def uploads_dir(self) -> Path:
        return self.state_dir / "uploads"

    @property
    def logs_dir(self) -> Path:
        return self.log_dir if self.log_dir is not None else self.state_dir / "logs"

    @property
    def shell_path(self) -> str:
        """The shell resolved through the current PATH, or the bare name (spawn then
        reports it missing)."""
        return resolve_command(self.shell)


def from_environment(**overrides: object) -> Settings:
    """Build Settings from the environment; `overrides` (from flags) win. Values that
    were not understood are in `Settings.problems`."""
    _problems.clear()
    shell = _env("SHELL").strip() or "sh"
    shell_args = tuple(_env("SHELL_ARGS").split()) or ("-c",)
    log_dir = _env("SANDBOX_LOG_DIR").strip()
    state_dir = _env("SANDBOX_STATE_DIR").strip()
    values: dict[str, object] = dict(
        shell=shell,
        shell_args=shell_args,
        workdir=_workdir(),
        auth_token=_env(TOKEN_VARIABLE),
        disable_request_logging=_env_bool("DISABLE_REQUEST_LOGGING", frozenset({"true"})),
        enable_processing_time=_env_bool("ENABLE_PROCESSING_TIME", frozenset({"true"})),
        disable_terminal=_env_bool("DISABLE_TERMINAL", frozenset({"true", "1"})),
        disable_keepalive=_env_bool("BL_DISABLE_KEEPALIVE"),
        scale_file=_env("BLAXEL_SCALE_FILE") or "/uk/libukp/scale_to_zero_disable",
        metadata_path=_env("BL_METADATA_PATH") or "/bl/metadata",
        upgrade_count=_env_int("SANDBOX_UPGRADE_COUNT", 0),
        max_logs_response_bytes=_env_int("SANDBOX_MAX_LOGS_RESPONSE_BYTES", 4 * MIB),
        max_inline_log_bytes=_env_int("SANDBOX_MAX_IN_MEMORY_LOG_BYTES", 64 * KIB),
        max_log_file_bytes=_env_int("SANDBOX_MAX_LOG_FILE_BYTES", 32 * MIB),
        max_log_bytes_total=_log_budget(),
        stop_grace_seconds=_env_float("SANDBOX_STOP_GRACE_SECONDS", 10.0),
        max_upload_bytes=_env_int("SANDBOX_MAX_UPLOAD_BYTES", 0),
        max_text_read_bytes=max(1, _env_int("SANDBOX_MAX_TEXT_READ_BYTES", 128 * KIB)),
        max_edit_bytes=max(1, _env_int("SANDBOX_MAX_EDIT_BYTES", 10 * MIB)),
        upload_ttl_seconds=_env_float("SANDBOX_UPLOAD_TTL_SECONDS", 24 * 3600.0),
        search_timeout=_env_float("SANDBOX_SEARCH_TIMEOUT_SECONDS", 30.0),
        header_timeout=_env_float("SANDBOX_HEADER_TIMEOUT_SECONDS", 30.0),
        body_idle_timeout=_env_float("SANDBOX_BODY_IDLE_TIMEOUT_SECONDS", 60.0),
        blfs_path=_env("SANDBOX_BLFS_PATH").strip() or "/usr/local/bin/blfs",
        allowed_hosts=_env_list("SANDBOX_ALLOWED_HOSTS"),
        allowed_origins=_env_list("SANDBOX_ALLOWED_ORIGINS"),
        session_idle_seconds=max(1.0, _env_float("SANDBOX_SESSION_IDLE_SECONDS", 1800.0)),
        session_max=max(1, _env_int("SANDBOX_SESSION_MAX", 32)),
        session_inline_bytes=max(256, _env_int("SANDBOX_SESSION_INLINE_BYTES", 32 * KIB)),
        session_max_output_bytes=max(0, _env_int("SANDBOX_SESSION_MAX_OUTPUT_BYTES", 16 * MIB)),
        idempotency_seconds=max(0.0, _env_float("SANDBOX_IDEMPOTENCY_SECONDS", 3600.0)),
        idempotency_max_keys=max(1, _env_int("SANDBOX_IDEMPOTENCY_MAX_KEYS", 4096)),
    )
    lock_fd = _env_int("SANDBOX_STATE_LOCK_FD", -1)
    if lock_fd >= 0:
        values["state_lock_fd"] = lock_fd
    if (not os.access(shell, os.X_OK)) if os.sep in shell else not shutil.which(shell):
        values["missing_shell"] = shell
        values["shell"] = "/bin/sh"
    if state_dir:
        values["state_dir"] = Path(state_dir)
    if log_dir:
        values["log_dir"] = Path(log_dir)
    for key, value in overrides.items():
        if value is not None:
            values[key] = value
    if "identity" not in values and _env("BL_SANDBOX_USER").strip() and _env_bool("BL_SANDBOX_USER_ENABLED"):
        values["identity"] = resolve_identity(_env("BL_SANDBOX_USER"))  # IdentityError: a fatal start-up error
    # Absolute: the daemon briefly changes directory to spawn (linux/children.py).
    for key in ("state_dir", "log_dir"):
        value = values.get(key)
        if isinstance(value, Path):
            values[key] = Path(os.path.abspath(value))
    values["problems"] = tuple(_problems)
    return Settings(**values)  # type: ignore[arg-type]


def version() -> str:
    return __version__
