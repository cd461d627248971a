#!/bin/sh
# Install the Debian tools the tests (or benchmarks) compare against, when missing.
# Usage: scripts/ensure-tools.sh COMMAND:PACKAGE ...   (e.g. inotifywait:inotify-tools)
# Needs root and apt-get; otherwise it only says what is missing (those tests skip).
set -eu
missing=""
for pair in "$@"; do
    command=${pair%%:*}
    package=${pair#*:}
    command -v "$command" >/dev/null 2>&1 || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing:$missing"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null; }
else
    echo "missing (tests that need them will skip):$missing" >&2
fi
