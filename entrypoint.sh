#!/bin/sh
# Container entrypoint: start sandbox-api, wait until it answers, optionally start one
# supervised process, then stay with the daemon until it exits.
#
#   SANDBOX_API                 the binary (default /usr/local/bin/sandbox-api)
#   SANDBOX_API_PORT            its port (default 8080)
#   SANDBOX_API_READY_TIMEOUT   seconds to wait for /health (default 30)
#   SANDBOX_START_COMMAND       a command to start through POST /process (optional), with
#   SANDBOX_START_NAME, SANDBOX_START_WORKDIR, SANDBOX_START_RESTART_ON_FAILURE,
#   SANDBOX_START_MAX_RESTARTS, SANDBOX_START_WAIT_FOR_PORTS
# Arguments are passed to the daemon. POSIX sh: runs under busybox, dash and bash.
set -u

SANDBOX_API=${SANDBOX_API:-/usr/local/bin/sandbox-api}
PORT=${SANDBOX_API_PORT:-8080}
export SANDBOX_API_PORT="$PORT"

say() { echo "entrypoint: $*" >&2; }

# The binary unpacks itself (~60 MB) into $TMPDIR and runs from there at every start:
# say so plainly instead of letting the bootloader fail obscurely.
check_tmpdir() {
    dir=${TMPDIR:-/tmp}
    hint="set TMPDIR to a writable, exec-able directory with ~60 MB free (with Docker: --tmpfs /tmp:exec)"
    if [ ! -d "$dir" ]; then
        say "temp dir $dir does not exist; $hint"
        return 1
    fi
    probe="$dir/.sandbox-api-probe.$$"
    if ! (printf '#!/bin/sh\nexit 0\n' > "$probe") 2>/dev/null; then
        say "temp dir $dir is not writable (read-only file system?); $hint"
        return 1
    fi
    chmod 700 "$probe"
    if ! "$probe" 2>/dev/null; then
        rm -f "$probe"
        say "temp dir $dir is mounted noexec; $hint"
        return 1
    fi
    rm -f "$probe"
}

if [ ! -x "$SANDBOX_API" ]; then
    say "$SANDBOX_API not found or not executable"
    exit 127
fi
check_tmpdir || exit 1

"$SANDBOX_API" --port "$PORT" "$@" &
daemon=$!

# docker stop sends SIGTERM to PID 1 (this shell): hand it to the daemon, which shuts
# down cleanly and removes its unpacked files.
stop() { kill -TERM "$daemon" 2>/dev/null; }
trap stop TERM INT HUP

if ! "$SANDBOX_API" ready --port "$PORT" --timeout "${SANDBOX_API_READY_TIMEOUT:-30}" --pid "$daemon"; then
    say "sandbox-api did not become ready; stopping"
    stop
    wait "$daemon"
    exit 1
fi

if [ -n "${SANDBOX_START_COMMAND:-}" ]; then
    "$SANDBOX_API" start-process --port "$PORT" || say "the start command was not started (see above); the daemon keeps running"
fi

# `wait` returns early when a trapped signal arrives: wait again until the daemon is gone.
while :; do
    wait "$daemon"
    status=$?
    kill -0 "$daemon" 2>/dev/null || break
done
exit "$status"
