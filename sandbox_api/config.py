"""Settings: one frozen object built once at start-up and passed down.

This is the only module that reads or writes `os.environ` (ARCHITECTURE rule 7):
the daemon's environment is also the base environment of every child, so reading
it fresh for each spawn (`child_environment`) and changing it (`/environment/reload`)
both live here.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .identity import Identity
from .identity import resolve as resolve_identity

KIB = 1024
MIB = 1024 * 1024

# The bearer token, or a file holding it (read once at start-up, then forgotten by the
# environment: see take_token).
TOKEN_VARIABLE = "SANDBOX_API_TOKEN"
TOKEN_FILE_VARIABLE = "SANDBOX_API_TOKEN_FILE"

# Marks every managed child so that its whole tree can be found later, even the
# members that left the process group and were re-parented (see linux/tree.py).
PROCESS_COOKIE = "SANDBOX_API_PROCESS_ID"

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def _read_umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# Read once, at import (in the main thread): reading it means setting it.
PROCESS_UMASK = _read_umask()


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
    # Retry-safe requests (idempotency.py): an Idempotency-Key is kept this many seconds after
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


# --- the daemon's own environment ------------------------------------------------

_resolved: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class ClientSettings:
    """What the `ready` and `start-process` subcommands read from the environment."""

    port: int
    token: str | None
    start_command: str
    start_name: str
    start_workdir: str
    start_restart_on_failure: bool
    start_max_restarts: int | None
    start_wait_for_ports: tuple[int, ...]


def client_from_environment() -> ClientSettings:
    """ValueError names a variable whose value is not usable."""
    env = os.environ

    def number(name: str) -> int | None:
        raw = env.get(name, "").strip()
        if not raw:
            return None
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not an integer") from None

    try:
        ports = tuple(int(p) for p in env.get("SANDBOX_START_WAIT_FOR_PORTS", "").split(",") if p.strip())
    except ValueError:
        raise ValueError(
            f"SANDBOX_START_WAIT_FOR_PORTS={env['SANDBOX_START_WAIT_FOR_PORTS']!r} is not a list of ports"
        ) from None
    return ClientSettings(
        port=number("SANDBOX_API_PORT") or 8080,
        token=env.get("SANDBOX_API_TOKEN") or None,
        start_command=env.get("SANDBOX_START_COMMAND", "").strip(),
        start_name=env.get("SANDBOX_START_NAME") or "entrypoint",
        start_workdir=env.get("SANDBOX_START_WORKDIR", ""),
        start_restart_on_failure=env.get("SANDBOX_START_RESTART_ON_FAILURE", "").lower() in ("1", "true", "yes"),
        start_max_restarts=number("SANDBOX_START_MAX_RESTARTS"),
        start_wait_for_ports=ports,
    )


def envfile_path() -> str:
    """`BL_ENV_VAR_PATH`: a file of variables to load at start ("" when unset)."""
    return os.environ.get("BL_ENV_VAR_PATH", "")


def ssl_roots_configured() -> bool:
    """Whether the environment names its own CA certificates (OpenSSL reads them itself)."""
    return bool(os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"))


def take_variable(name: str) -> str:
    """A variable's value, removed from the environment (a hand-over between daemons)."""
    return os.environ.pop(name, "")


def resolve_command(name: str) -> str:
    """`name` looked up in PATH, cached per PATH value (this runs at every spawn)."""
    if os.sep in name:
        return name
    key = (name, os.environ.get("PATH", ""))
    found = _resolved.get(key)
    if found is None or not os.access(found, os.X_OK):
        found = shutil.which(name) or name
        _resolved[key] = found
    return found


def find_program(*names: str) -> str | None:
    """The first of `names` installed as an executable on PATH, else None."""
    for name in names:
        path = resolve_command(name)
        if os.sep in path and os.access(path, os.X_OK):
            return path
    return None


def runtime_environment() -> dict[bytes, bytes]:
    """Our environment, as a program started from here should see it.

    Bytes, not str, copied at C speed from the mapping behind `os.environ` (a
    Python-level copy of `os.environ` costs more than the rest of a spawn's setup).
    """
    return dict(getattr(os.environ, "_data", None) or os.environb)


def child_environment(extra: dict[str, str] | None = None, identity: Identity | None = None) -> dict[bytes, bytes]:
    """The environment a child starts with: the runtime's (above) minus the daemon's
    secrets, plus `extra`, then what a login as `identity` sets (HOME, USER...)."""
    env = runtime_environment()
    env.pop(TOKEN_VARIABLE.encode(), None)  # the daemon's secret, not the user's
    env.pop(TOKEN_FILE_VARIABLE.encode(), None)
    env.pop(b"BL_NETWORKING_CONFIG", None)  # holds the tunnel's private key
    env.pop(b"SANDBOX_STATE_LOCK_FD", None)  # an fd number of ours, meaningless to a child
    if extra:
        env.update((os.fsencode(k), os.fsencode(v)) for k, v in extra.items())
    if identity is not None:
        env.update((os.fsencode(k), os.fsencode(v)) for k, v in identity.environment().items())
    return env


def take_token(flag: str | None = None, flag_file: str | None = None) -> str:
    """The bearer token: `--token`, else `--token-file`, else SANDBOX_API_TOKEN, else the
    file SANDBOX_API_TOKEN_FILE names ("" for none). SANDBOX_API_TOKEN then leaves our
    environment, so that no child and no later look-up finds it. ValueError when a token
    file cannot be read or is empty (refusing to start beats serving without auth)."""
    from_env = os.environ.pop(TOKEN_VARIABLE, "")
    if flag:
        return flag
    if flag_file:
        return _read_token_file(flag_file)
    if from_env:
        return from_env
    path = os.environ.get(TOKEN_FILE_VARIABLE, "").strip()
    return _read_token_file(path) if path else ""


def _read_token_file(path: str) -> str:
    try:
        with open(path, "rb") as f:
            raw = f.read(64 * KIB + 1)
    except OSError as e:
        raise ValueError(f"cannot read the token file {path}: {e.strerror}") from None
    try:
        token = raw.decode("utf-8").strip()  # the trailing newline an editor or `echo` leaves
    except UnicodeDecodeError:
        raise ValueError(f"the token file {path} is not UTF-8 text") from None
    if not token or len(raw) > 64 * KIB:
        raise ValueError(f"the token file {path} is {'empty' if not token else 'over 64 KiB'}")
    return token


def valid_variable(name: str, value: str) -> bool:
    """Whether `name=value` can be put in an environment (no OS call takes a NUL,
    and a name holds no `=`)."""
    return bool(name) and "=" not in name and "\0" not in name and "\0" not in value


def home_directory() -> str | None:
    home = os.environ.get("HOME", "")
    return home or None


def expand_path(path: str) -> str:
    """The original's rules for a path or a working directory as given: a leading `~`
    is $HOME, `//` is `/`. ValueError when `~` is used and there is no HOME."""
    if path.startswith("~"):
        home = home_directory()
        if home is None:
            raise ValueError("home directory not found")
        path = home + path[1:]
    while "//" in path:
        path = path.replace("//", "/")
    return path


def get_variable(name: str) -> str | None:
    return os.environ.get(name)


def load_dotenv(path: str = ".env") -> int:
    """Load KEY=VALUE lines from `path` without overriding existing variables."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    count = 0
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key not in os.environ:
            os.environ[key] = value
            count += 1
    return count


def load_envfile(path: str) -> int:
    """Load NUL-separated KEY\\0VALUE\\0 pairs (BL_ENV_VAR_PATH); existing keys win.

    Raises ValueError when the file has content but no valid pair.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return 0
    if not data:
        return 0
    parts = data.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    count = 0
    valid = 0
    for i in range(0, len(parts) - 1, 2):
        key = parts[i].decode("utf-8", "replace")
        if not key or "=" in key:
            continue
        valid += 1
        if key not in os.environ:
            os.environ[key] = parts[i + 1].decode("utf-8", "replace")
            count += 1
    if valid == 0:
        raise ValueError(f"{path}: no KEY\\0VALUE pair found")
    return count


def version() -> str:
    return __version__
