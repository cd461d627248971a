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

if [ ! -x "$SANDBOX_API" ]; then
    say "$SANDBOX_API not found or not executable"
    exit 127
fi

"$SANDBOX_API" --port "$PORT" "$@" &
daemon=$!

# docker stop sends SIGTERM to PID 1 (this shell): hand it to the daemon, which shuts
# down cleanly.
stop() { kill -TERM "$daemon" 2>/dev/null; }
trap stop TERM INT HUP

"$SANDBOX_API" ready --port "$PORT" --timeout "${SANDBOX_API_READY_TIMEOUT:-30}" --pid "$daemon"
ready_status=$?
if [ "$ready_status" -ne 0 ]; then
    # A file cut short in its machine code dies on a signal before it can say so (and
    # `ready` is the same file).
    if [ "$ready_status" -gt 128 ]; then
        say "sandbox-api died on signal $((ready_status - 128)) while starting: $SANDBOX_API may be truncated or damaged; copy it again"
    fi
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
