"""The official Blaxel SDK, pointed at a real daemon on localhost (no cloud, dummy key)."""

from __future__ import annotations

import os
import socket

import pytest

# Must be set before `blaxel` is imported: they only become request headers.
os.environ.setdefault("BL_API_KEY", "local-dummy-key")
os.environ.setdefault("BL_WORKSPACE", "local")
os.environ.setdefault("DO_NOT_TRACK", "1")

from blaxel.core import SandboxInstance
from blaxel.core.client.models import Metadata, Sandbox, SandboxSpec

from tests.conftest import Daemon

_real_getaddrinfo = socket.getaddrinfo


def _loopback_only(host, *args, **kwargs):
    """Fail loudly if the SDK ever tries to reach Blaxel's cloud."""
    name = host.decode("idna") if isinstance(host, bytes) else host
    if name not in ("127.0.0.1", "localhost", "::1"):
        raise OSError(f"test guard: refusing to resolve non-loopback host {name!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _loopback_only


@pytest.fixture(scope="module")
def sdk_daemon(tmp_path_factory) -> Daemon:
    base = tmp_path_factory.mktemp("sdk")
    (base / "work").mkdir()
    d = Daemon(base / "state", base / "work")
    d.start()
    yield d
    d.stop()


@pytest.fixture
def sandbox(sdk_daemon: Daemon) -> SandboxInstance:
    record = Sandbox(metadata=Metadata(name="local"), spec=SandboxSpec())
    return SandboxInstance(record, force_url=sdk_daemon.url)
