"""What the one-file binary (PyInstaller one-file inside staticx) needs at run time.

- The environment children get is restored in `config.child_environment` (the loader
  variables the bootloaders add); variables set here for the daemon's own use are
  listed in `ADDED_VARIABLES` and hidden from children too.
- TLS roots: the bundled OpenSSL looks for CA certificates where the build machine
  keeps them (`/usr/lib/ssl`). In other images (Alpine, RHEL) the daemon's own HTTPS
  calls would trust nothing, so the image's CA bundle is used when none is configured.
- Stale extraction directories: each start unpacks ~60 MB into `$TMPDIR`
  (`staticx-*`, `_MEI*`), removed at a clean exit. A bootloader killed while it unpacks,
  or by SIGKILL, leaves its directory behind; with a persistent /tmp they pile up, so
  at start-up the ones no live process uses are removed.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
import time

log = logging.getLogger("sandbox_api.bundle")

FROZEN = getattr(sys, "_MEIPASS", None) is not None
ADDED_VARIABLES: set[bytes] = set()
CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # RHEL, Fedora
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # Alpine, macOS
)
EXTRACTION_PREFIXES = ("_MEI", "staticx-")
STALE_AFTER_SECONDS = 120.0  # never race a bootloader that is still unpacking


def use_image_tls_roots() -> str | None:
    """Point OpenSSL at the image's CA bundle when the compiled-in one is missing.

    Must run before `ssl` contexts are made (aiohttp makes two at import time).
    """
    if not FROZEN or "SSL_CERT_FILE" in os.environ or "SSL_CERT_DIR" in os.environ:
        return None
    import ssl

    defaults = ssl.get_default_verify_paths()
    if (defaults.cafile and os.path.isfile(defaults.cafile)) or (defaults.capath and os.path.isdir(defaults.capath)):
        return None
    for bundle in CA_BUNDLES:
        if os.path.isfile(bundle):
            os.environ["SSL_CERT_FILE"] = bundle
            ADDED_VARIABLES.add(b"SSL_CERT_FILE")
            return bundle
    return None


def _own_extraction_dirs() -> set[str]:
    own = {getattr(sys, "_MEIPASS", "") or "", os.environ.get("STATICX_BUNDLE_DIR", "")}
    return {os.path.realpath(p) for p in own if p}


def _paths_in_use(candidates: set[str]) -> set[str]:
    """The candidates that a live process maps, runs or has as its working directory."""
    used: set[str] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/maps", "rb") as f:
                maps = f.read().decode("utf-8", "replace")
            links = [os.readlink(f"/proc/{pid}/{name}") for name in ("exe", "cwd")]
        except OSError:
            continue
        for candidate in candidates - used:
            if candidate + "/" in maps or any(link == candidate or link.startswith(candidate + "/") for link in links):
                used.add(candidate)
    return used


def stale_extraction_dirs(tmpdir: str | None = None, now: float | None = None) -> list[str]:
    tmpdir = tmpdir or tempfile.gettempdir()
    now = time.time() if now is None else now
    own = _own_extraction_dirs()
    candidates: set[str] = set()
    try:
        entries = list(os.scandir(tmpdir))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(EXTRACTION_PREFIXES):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        path = os.path.realpath(entry.path)
        if entry.is_dir(follow_symlinks=False) and info.st_uid == os.geteuid() and now - info.st_mtime > STALE_AFTER_SECONDS:
            if path not in own:
                candidates.add(path)
    return sorted(candidates - _paths_in_use(candidates))


def remove_stale_extraction_dirs(tmpdir: str | None = None) -> list[str]:
    removed = []
    for path in stale_extraction_dirs(tmpdir):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            removed.append(path)
    if removed:
        log.info("removed %d stale extraction director%s: %s", len(removed), "y" if len(removed) == 1 else "ies", ", ".join(removed))
    return removed


def start_background_cleanup() -> None:
    """In the binary only: reading every process's maps takes a while, so off the start path."""
    if FROZEN:
        threading.Thread(target=remove_stale_extraction_dirs, name="stale-extractions", daemon=True).start()
