#!/bin/sh
# A Debian bookworm minbase root filesystem (no Python, glibc only), for the portability
# tests of the binary: scripts/make-rootfs.sh DIR. Needs root and debootstrap.
set -eu
target=$1
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
rm -rf "$target.tmp"
mkdir -p "$(dirname "$target")"
debootstrap --variant=minbase bookworm "$target.tmp" "$mirror" >"$target.log" 2>&1 || { tail -20 "$target.log"; exit 1; }
rm -rf "$target.tmp/var/cache/apt/archives/"*.deb
rm -rf "$target"
mv "$target.tmp" "$target"
touch "$target/.complete"
