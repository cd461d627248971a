"""Settings and the environment.

This is the only package that reads or writes `os.environ` (ARCHITECTURE rule 7): the
daemon's environment is also the base environment of every child, so reading it fresh
for each spawn (`child_environment`) and changing it (`/environment/reload`) both live
here. `settings.py`: `Settings`, one frozen object built once at start-up and passed
down; `environment.py`: the daemon's own environment and the children's; `client.py`:
what the `ready` and `start-process` subcommands read. Callers use this package's names
(`config.X`), not its modules.
"""

from .client import ClientSettings, client_from_environment
from .environment import (
    PROCESS_COOKIE,
    PROCESS_UMASK,
    TOKEN_FILE_VARIABLE,
    TOKEN_VARIABLE,
    child_environment,
    envfile_path,
    expand_path,
    find_program,
    get_variable,
    home_directory,
    load_dotenv,
    load_envfile,
    resolve_command,
    runtime_environment,
    ssl_roots_configured,
    take_token,
    take_variable,
    valid_variable,
)
from .settings import KIB, MIB, Settings, from_environment, log_level, version

__all__ = [
    "KIB",
    "MIB",
    "PROCESS_COOKIE",
    "PROCESS_UMASK",
    "TOKEN_FILE_VARIABLE",
    "TOKEN_VARIABLE",
    "ClientSettings",
    "Settings",
    "child_environment",
    "client_from_environment",
    "envfile_path",
    "expand_path",
    "find_program",
    "from_environment",
    "get_variable",
    "home_directory",
    "load_dotenv",
    "load_envfile",
    "log_level",
    "resolve_command",
    "runtime_environment",
    "ssl_roots_configured",
    "take_token",
    "take_variable",
    "valid_variable",
    "version",
]
