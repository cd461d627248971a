#!/bin/sh
# `make binary`: build dist/sandbox-api, one static executable that unpacks nothing
# (a static CPython with our native extensions built in, our code appended as a zip).
# packaging/static/build.py has the steps; products are cached under build/static/.
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-$(pwd)/dist/sandbox-api}

# What the build compiles and links with (static libraries included).
need=""
for pair in gcc:gcc g++:g++ make:make objcopy:binutils; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need="$need ${pair#*:}"
done
for pair in libssl.a:libssl-dev libz.a:zlib1g-dev libc.a:libc6-dev; do
    [ -e "/usr/lib/x86_64-linux-gnu/${pair%%:*}" ] || need="$need ${pair#*:}"
done
command -v dpkg-source >/dev/null 2>&1 || need="$need dpkg-dev"
if [ -n "$need" ]; then
    echo "installing:$need"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq $need >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $need >/dev/null; }
fi

python3 packaging/static/build.py "$OUT"
"$OUT" --version
