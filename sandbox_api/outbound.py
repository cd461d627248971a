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
import importlib
import importlib.util
import logging
import os
import ssl
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import config

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

    ssl.create_default_context = create
    ssl.SSLContext.set_default_verify_paths = lambda self: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        ssl.create_default_context = real_create
        ssl.SSLContext.set_default_verify_paths = real_default_paths  # type: ignore[method-assign]


def import_aiohttp() -> None:
    """Make `aiohttp` importable with neither its client side nor TLS roots loaded
    (a no-op if it is already imported).

    aiohttp's package `__init__` imports the whole client (client, connector, tracing,
    cookie jar, resolver: ~60 ms of the ~220 ms that `import aiohttp.web` costs) and
    the server needs none of it until its first outbound call. So the package module
    is registered with its `__path__` but its `__init__` not run: submodules
    (`aiohttp.web`, `aiohttp.hdrs`, ...) import as usual, and the first name that is
    not a submodule (`aiohttp.ClientSession`) runs the real `__init__` in full, with
    the TLS contexts left without roots. Nothing of aiohttp is changed; the worst case
    is today's cost, paid later. (No library does this: importlib.util.LazyLoader
    defers a whole module, not a package's `__init__` while its submodules load.)
    """
    global _roots_loaded
    if "aiohttp" in sys.modules:
        _roots_loaded = True  # imported the usual way: its contexts already have roots
        return
    spec = importlib.util.find_spec("aiohttp")
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError("No module named 'aiohttp'", name="aiohttp")
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader
    version = _version_constant(loader.get_code("aiohttp"))  # type: ignore[attr-defined]
    if version is not None:
        setattr(package, "__version__", version)  # noqa: B010 - `from . import __version__` in aiohttp.http

    def complete(name: str) -> Any:
        if not name.startswith("__"):
            try:
                return importlib.import_module(f"aiohttp.{name}")
            except ModuleNotFoundError as e:
                if e.name != f"aiohttp.{name}":
                    raise
        del package.__getattr__
        with _contexts_without_roots():
            loader.exec_module(package)
        return getattr(package, name)

    package.__getattr__ = complete  # type: ignore[method-assign]
    sys.modules["aiohttp"] = package


def _version_constant(code: Any) -> str | None:
    """`__version__` is the package's first constant that looks like a version."""
    for constant in getattr(code, "co_consts", ()):
        if isinstance(constant, str) and constant[:1].isdigit() and "." in constant:
            return constant
    return None


def trusted_roots() -> tuple[str | None, str | None]:
    """(cafile, capath) to load; (None, None) means OpenSSL's defaults."""
    if config.ssl_roots_configured():
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
