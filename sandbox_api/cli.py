"""The `sandbox-api` command: flags + environment -> Settings, then serve."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
from pathlib import Path

from . import config, identity, logsetup, outbound
from .linux import syscalls
from .statelock import StateDirInUse, StateLock

log = logging.getLogger("sandbox_api")

CLIENT_COMMANDS = ("ready", "start-process")  # served by sandbox_api/client.py


USAGE_EPILOG = """\
subcommands (for an image's entrypoint, against the running daemon):
  sandbox-api ready [--port P] [--timeout S] [--pid N]
      exit 0 once GET /health answers 200 (no curl or wget needed)
  sandbox-api start-process [--port P]
      start a supervised process from SANDBOX_START_COMMAND (required), SANDBOX_START_NAME,
      SANDBOX_START_WORKDIR, SANDBOX_START_RESTART_ON_FAILURE, SANDBOX_START_MAX_RESTARTS,
      SANDBOX_START_WAIT_FOR_PORTS (comma-separated)

main environment variables (all of them: README.md):
  WORKDIR                    base of relative paths (default: the current directory)
  SANDBOX_STATE_DIR          process records and logs (or --state-dir)
  SANDBOX_API_TOKEN(_FILE)   require a bearer token (or --token / --token-file)
  SHELL, SHELL_ARGS          how commands run (default: sh -c)
  SANDBOX_MAX_LOG_FILE_BYTES cap per output file (default 32 MiB)
  DISABLE_TERMINAL=true      no /terminal routes

example:
  SANDBOX_STATE_DIR=/tmp/sbx sandbox-api -p 8080 &
  curl -s localhost:8080/process -d '{"command": "echo hi", "waitForCompletion": true}'
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The daemon's flags. Go's flag package accepts -port and --port alike, and so do we;
    an unknown flag (or a stray argument) is the usage line and exit 2, as there."""
    p = argparse.ArgumentParser(
        prog="sandbox-api",
        description="The sandbox daemon: processes, files, search, watch, terminal and MCP over HTTP.",
        epilog=USAGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # `--po` is not `--port`: Go's flags have no abbreviations
    )
    p.add_argument("-p", "--port", "-port", type=int, default=None, help="port to listen on (default 8080)")
    p.add_argument("--host", "-host", default=None, help="address to listen on (default 0.0.0.0)")
    p.add_argument("-c", "--command", "-command", default=None, help="a command to start in the background at start-up")
    p.add_argument(
        "--token",
        "-token",
        default=None,
        help="require this bearer token on every route but /health (env SANDBOX_API_TOKEN)",
    )
    p.add_argument(
        "--token-file",
        "-token-file",
        default=None,
        help="read the token from this file (env SANDBOX_API_TOKEN_FILE); keeps it off the command line",
    )
    p.add_argument(
        "--state-dir", "-state-dir", default=None, help="where process records and logs live (env SANDBOX_STATE_DIR)"
    )
    p.add_argument(
        "--user",
        "-user",
        default=None,
        help="run processes and write files as this user: name, uid, name:group or uid:gid (env BL_SANDBOX_USER)",
    )
    p.add_argument("--disable-telemetry", "-disable-telemetry", action="store_true", help="accepted for compatibility")
    p.add_argument("--version", "-version", action="store_true", help="print the version and exit")
    p.add_argument("--build-info", action="store_true", help="print how this program was built (JSON) and exit")
    return p.parse_args(argv)


def usable_state_dir(path: Path) -> str | None:
    """Why `path` cannot be the state dir, or None: the check comes before anything else
    uses it, so that the error names the state dir and how to choose another."""
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                return f"{parent}: not a directory" if parent == path else f"{parent} (a parent): not a directory"
            if not os.access(parent, os.W_OK | os.X_OK):
                return f"{parent}: not writable" if parent == path else f"cannot create it in {parent}: not writable"
            return None
    return None


def without_token(argv: list[str], token: str) -> list[str]:
    """`argv` without the token flag and its value, however spelled (`--token T`,
    `-token=T`, an abbreviation such as `--toke T`)."""

    def token_flag(arg: str) -> bool:
        name = arg.split("=", 1)[0].lstrip("-")
        return arg.startswith("-") and bool(name) and "token".startswith(name)

    kept: list[str] = []
    for arg in argv:
        if arg == token and kept and token_flag(kept[-1]) and "=" not in kept[-1]:
            kept.pop()
        elif not (token_flag(arg) and arg.endswith("=" + token)):
            kept.append(arg)
    return kept


def main(argv: list[str] | None = None) -> None:
    gc.disable()  # until the daemon listens (app.serve): collections during start-up find nothing
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in CLIENT_COMMANDS:
        from . import client  # urllib and http.client: not for the daemon's start

        sys.exit(client.main(argv))
    args = parse_args(argv)
    if args.version:
        print(f"sandbox-api {config.version()}")
        return
    if args.build_info:
        from . import buildinfo

        buildinfo.main()
        return
    level, problem = config.log_level()
    logsetup.setup(level)
    if problem is not None:
        log.warning("%s", problem)
    loaded = config.load_dotenv(".env")
    if loaded:
        log.info("loaded %d variable(s) from %s", loaded, os.path.abspath(".env"))
    envfile = config.envfile_path()
    if envfile:
        try:
            config.load_envfile(envfile)
        except ValueError as e:
            log.error("envfile: %s", e)
    try:
        token = config.take_token(args.token, args.token_file)
    except ValueError as e:
        log.error("token: %s", e)
        sys.exit(1)
    if token:
        # Other users read /proc/<pid>/cmdline: the token leaves it (and our environment's
        # memory), and sys.argv, which an upgrade passes to the next binary.
        syscalls.scrub_own_strings(os.fsencode(token), (config.TOKEN_VARIABLE.encode(),))
        sys.argv[1:] = without_token(sys.argv[1:], token)
    try:
        settings = config.from_environment(
            port=args.port,
            host=args.host,
            startup_command=args.command,
            auth_token=token or None,
            state_dir=Path(args.state_dir) if args.state_dir else None,
            identity=identity.resolve(args.user) if args.user else None,
        )
    except identity.IdentityError as e:
        log.error("workload user: %s", e)
        sys.exit(1)
    for problem in settings.problems:
        log.warning("%s", problem)
    unusable = usable_state_dir(settings.state_dir)
    if unusable is not None:
        log.error("state dir %s; set --state-dir or SANDBOX_STATE_DIR", unusable)
        sys.exit(1)
    try:
        lock = StateLock.acquire(settings.state_dir, settings.state_lock_fd)
    except StateDirInUse as e:
        log.error("%s", e)
        sys.exit(2)
    except OSError as e:
        log.error("cannot lock the state dir %s: %s", settings.state_dir, e)
        sys.exit(1)
    if settings.missing_shell:
        log.warning("SHELL %r is not an executable program: processes run with /bin/sh", settings.missing_shell)
    if settings.identity is not None:
        who = settings.identity
        log.info("workload user: %s (uid %d, gid %d, groups %s)", who.name, who.uid, who.gid, list(who.groups))
    outbound.import_aiohttp()  # before anything imports it: no TLS roots loaded at start
    from .app import serve  # after logging is set up

    try:
        successor = asyncio.run(serve(settings))
    except OSError as e:
        log.error("cannot serve on %s:%d: %s", settings.host, settings.port, e)
        sys.exit(1)
    if successor is not None:
        # An upgrade: become the new binary (same pid; supervised processes stay our children).
        log.info("exec %s", successor.path)
        try:
            os.execve(successor.path, successor.argv, {**successor.env, **lock.for_exec()})
        except OSError as e:  # validated moments ago, so very unlikely; a supervisor restarts us
            log.error("upgrade: cannot exec %s: %s", successor.path, e)
            sys.exit(1)


if __name__ == "__main__":
    main()
