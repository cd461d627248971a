"""The daemon's own environment, which is also the base environment of every child: read
fresh for each spawn (`child_environment`), changed by loading `.env`, `BL_ENV_VAR_PATH`
and `/environment/reload`, and the lookups that depend on it (PATH, HOME)."""

from __future__ import annotations

import os
import shutil

from ..identity import Identity

# The bearer token, or a file holding it (read once at start-up, then forgotten by the
# environment: see take_token).
TOKEN_VARIABLE = "SANDBOX_API_TOKEN"
TOKEN_FILE_VARIABLE = "SANDBOX_API_TOKEN_FILE"

# Marks every managed child so that its whole tree can be found later, even the
# members that left the process group and were re-parented (see linux/tree.py).
PROCESS_COOKIE = "SANDBOX_API_PROCESS_ID"


def _read_umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# Read once, at import (in the main thread): reading it means setting it.
PROCESS_UMASK = _read_umask()

# PATH look-ups, by (name, PATH): they run at every spawn.
_resolved: dict[tuple[str, str], str] = {}
TOKEN_FILE_MAX_BYTES = 64 * 1024


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
            raw = f.read(TOKEN_FILE_MAX_BYTES + 1)
    except OSError as e:
        raise ValueError(f"cannot read the token file {path}: {e.strerror}") from None
    try:
        token = raw.decode("utf-8").strip()  # the trailing newline an editor or `echo` leaves
    except UnicodeDecodeError:
        raise ValueError(f"the token file {path} is not UTF-8 text") from None
    if not token or len(raw) > TOKEN_FILE_MAX_BYTES:
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
