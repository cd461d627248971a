"""Typed errors raised by services; one HTTP middleware maps each to its status.

Services never build HTTP responses. They raise one of these with the message the
contract specifies, and `http/errors.py` turns it into `{"error": message}`.
"""

from __future__ import annotations

import errno
from typing import Any


class ApiError(Exception):
    """Base class: `status` is the HTTP status, `extra` adds keys to the JSON body,
    `headers` headers to the response."""

    status = 500

    def __init__(self, message: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.extra = extra


class Invalid(ApiError):
    """The request is malformed or asks for something impossible (400)."""

    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class RangeNotSatisfiable(ApiError):
    status = 416


class Unprocessable(ApiError):
    """The request was valid but could not be carried out (422)."""

    status = 422


class Internal(ApiError):
    status = 500


class NotSupported(ApiError):
    """The capability needs something this sandbox lacks (501)."""

    status = 501


class BadGateway(ApiError):
    """A server this one forwards to could not be reached or answered badly (502)."""

    status = 502


class ServiceUnavailable(ApiError):
    status = 503


class GatewayTimeout(ApiError):
    """A server this one forwards to did not answer in time (504)."""

    status = 504


class InsufficientStorage(ApiError):
    status = 507


class LoopDetected(ApiError):
    """A request that would come back to this server through its own proxy (508)."""

    status = 508


# --- the one translator from OSError ----------------------------------------------------

FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


def os_error_text(e: OSError, op: str | None = None, path: str | None = None) -> str:
    """Go's `<op> <path>: <errno text>` (errno text in lower case, as Go spells it)."""
    text = e.strerror or str(e)
    text = text[:1].lower() + text[1:]
    path = path or (e.filename if isinstance(e.filename, str) else None)
    if op and path:
        return f"{op} {path}: {text}"
    if path:
        return f"{path}: {text}"
    return text


def from_os_error(
    e: OSError, prefix: str = "", cls: type[ApiError] | None = None, op: str | None = None, path: str | None = None
) -> ApiError:
    """An OSError as our error: 507 for a full disk, else `cls` (422 by default), its
    message `prefix` + `os_error_text`."""
    message = f"{prefix}{os_error_text(e, op, path)}"
    if e.errno in FULL_DISK:
        return InsufficientStorage(message)
    return (cls or Unprocessable)(message)


def stat_error(e: OSError, path: str) -> ApiError:
    """A failed stat of a path the client named. A symlink loop is the path's fault (422), a
    name too long the request's (400); others (EACCES, ENOTDIR) stay 500 as in the original."""
    text = os_error_text(e, "stat", path)
    if e.errno == errno.ELOOP:
        return Unprocessable(text)
    if e.errno == errno.ENAMETOOLONG:
        return Invalid(text)
    return Internal(text)
