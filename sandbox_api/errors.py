"""Typed errors raised by services; one HTTP middleware maps each to its status.

Services never build HTTP responses. They raise one of these with the message the
contract specifies, and `http/errors.py` turns it into `{"error": message}`.
"""

from __future__ import annotations

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
