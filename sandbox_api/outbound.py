"""Outbound HTTP: the upgrade's download, codegen providers, port callbacks, the port proxy.

aiohttp builds two TLS contexts when it is imported and loads the whole CA store into
them (25-65 ms, more on a cold disk), although most sandboxes never make an HTTPS call.
`import_aiohttp()` imports it with those contexts left without roots; `session()` gives
them the trusted roots on the first outbound call, in a thread (loading is blocking
I/O). aiohttp keeps using its own two context objects, so every session sees the roots
once they are in, whatever its arguments.

Trusted roots: `SSL_CERT_FILE`/`SSL_CERT_DIR` when set; else OpenSSL's compiled-in
locations when they exist; else the image's CA bundle from the usual places (the
one-file binary's OpenSSL was built on Debian: on Alpine or RHEL its default paths do
not exist).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("sandbox_api.outbound")

CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # RHEL, Fedora
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # Alpine, macOS
)

_roots_loaded = False


@contextlib.contextmanager
def _contexts_without_roots() -> Iterator[None]:
    real_create = ssl.create_default_context
    real_default_paths = ssl.SSLContext.set_default_verify_paths

    def create(purpose: Any = ssl.Purpose.SERVER_AUTH, **kwargs: Any) -> ssl.SSLContext:
        if purpose != ssl.Purpose.SERVER_AUTH or kwargs:
            return real_create(purpose, **kwargs)
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies peers and host names; no roots yet

    ssl.create_default_context = create  # type: ignore[assignment]
    ssl.SSLContext.set_default_verify_paths = lambda self: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        ssl.create_default_context = real_create
        ssl.SSLContext.set_default_verify_paths = real_default_paths  # type: ignore[method-assign]


def import_aiohttp() -> None:
    """Import aiohttp without loading TLS roots (a no-op if it is already imported)."""
    global _roots_loaded
    if "aiohttp" in sys.modules:
        _roots_loaded = True  # imported the usual way: its contexts already have roots
        return
    with _contexts_without_roots():
        import aiohttp  # noqa: F401


def trusted_roots() -> tuple[str | None, str | None]:
    """(cafile, capath) to load; (None, None) means OpenSSL's defaults."""
    if os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"):
        return None, None
    defaults = ssl.get_default_verify_paths()
    if (defaults.cafile and os.path.isfile(defaults.cafile)) or (defaults.capath and os.path.isdir(defaults.capath)):
        return None, None
    for bundle in CA_BUNDLES:
        if os.path.isfile(bundle):
            return bundle, None
    return None, None


def _load_roots() -> None:
    from aiohttp import connector

    cafile, capath = trusted_roots()
    for context in (connector._SSL_CONTEXT_VERIFIED, connector._SSL_CONTEXT_UNVERIFIED):
        if context is None:
            continue
        if cafile or capath:
            context.load_verify_locations(cafile=cafile, capath=capath)
        else:
            context.set_default_verify_paths()
    log.info("TLS roots: %s", cafile or capath or "OpenSSL defaults")


async def ensure_roots() -> None:
    """Load the roots once (two first calls at once both load them: harmless, the
    contexts ignore certificates they already hold)."""
    global _roots_loaded
    if not _roots_loaded:
        await asyncio.to_thread(_load_roots)
        _roots_loaded = True


async def session(**kwargs: Any) -> aiohttp.ClientSession:
    """An aiohttp client session whose HTTPS calls trust the image's roots."""
    import aiohttp

    await ensure_roots()
    return aiohttp.ClientSession(**kwargs)
