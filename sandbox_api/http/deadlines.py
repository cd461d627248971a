"""Deadlines for slow senders, which aiohttp's server does not have.

- Header deadline: a request head must be complete within `header_timeout` seconds,
  counted from the connection's start for its first request and from the first byte
  of each later one (an idle keep-alive connection is governed by the keep-alive
  timeout, as before). A connection that dribbles header lines is closed.
- Body idle deadline: while a handler waits for request body bytes, the client must
  send one at least every `body_idle_timeout` seconds, or the connection is closed:
  the handler's read fails, so an upload in progress is aborted and its temp file
  released. A body that keeps moving is never cut, however long it takes, and a
  pause the daemon causes (not reading, e.g. a full stdin pipe) is not counted.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from .streams import LOAD

log = logging.getLogger("sandbox_api.http")


class _Cuts:
    """Connections closed for slowness: one log line per reason and burst, not one per
    connection (a flood of slow senders must not flood the log), and the memory they
    held given back once the burst is over."""

    def __init__(self) -> None:
        self._pending: dict[str, int] = {}

    def count(self, reason: str) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_later(LOG_EVERY_SECONDS, self._report)
        self._pending[reason] = self._pending.get(reason, 0) + 1
        LOAD.release_soon()

    def _report(self) -> None:
        for reason, count in self._pending.items():
            log.info("closed %d connection(s): %s", count, reason)
        self._pending.clear()


LOG_EVERY_SECONDS = 1.0
CUTS = _Cuts()


class GuardedRequestHandler(RequestHandler):
    def __init__(self, manager: web.Server, *, header_timeout: float, body_idle_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._body_idle_timeout = body_idle_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._last_byte = 0.0
        self._idle_since = 0.0

    # --- header deadline ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_deadline()

    def _arm_head_deadline(self) -> None:
        if self._header_timeout > 0 and self._head_timer is None:
            # Up to 10 % later, at random: a flood of connections opened together is then cut
            # a few at a time instead of all in one turn of the event loop.
            delay = self._header_timeout * (1 + random.random() / 10)
            self._head_timer = self._loop.call_later(delay, self._head_expired)

    def _cancel_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport is not None:
            CUTS.count(f"no complete request head within {self._header_timeout:g} s")
            self.force_close()

    def data_received(self, data: bytes) -> None:
        self._last_byte = self._loop.time()
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:
            self._cancel_head_deadline()
        elif data and self._current_request is None and not self._messages and not self._upgraded:
            self._arm_head_deadline()  # the first bytes of a later request's head

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_deadline()
        self._cancel_body_watch()
        super().connection_lost(exc)

    # --- body idle deadline ---------------------------------------------------------

    async def _handle_request(
        self,
        request: web.BaseRequest,
        start_time: float | None,
        request_handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
    ) -> tuple[web.StreamResponse, bool]:
        if self._body_idle_timeout > 0 and request.can_read_body:
            self._idle_since = self._loop.time()
            self._watch_body(request)
        try:
            return await super()._handle_request(request, start_time, request_handler)
        finally:
            self._cancel_body_watch()

    def _watch_body(self, request: web.BaseRequest) -> None:
        self._body_timer = self._loop.call_later(max(0.05, self._body_idle_timeout / 4), self._check_body, request)

    def _cancel_body_watch(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _check_body(self, request: web.BaseRequest) -> None:
        self._body_timer = None
        payload = request.content
        if payload.is_eof() or self.transport is None:
            return
        now = self._loop.time()
        # Only a handler waiting for bytes that do not come counts as idle.
        if getattr(payload, "_waiter", None) is None:
            self._idle_since = now
        elif now - max(self._idle_since, self._last_byte) >= self._body_idle_timeout:
            CUTS.count(f"no byte of its request body for {self._body_idle_timeout:g} s")
            self.force_close()
            return
        self._watch_body(request)


class GuardedServer(web.Server):
    """A web.Server whose connections have the deadlines above."""

    def __init__(self, handler: Any, *, header_timeout: float, body_idle_timeout: float, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._deadlines = {"header_timeout": header_timeout, "body_idle_timeout": body_idle_timeout}

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, **self._deadlines, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    def __init__(self, app: web.Application, *, header_timeout: float, body_idle_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._deadlines = {"header_timeout": header_timeout, "body_idle_timeout": body_idle_timeout}

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        # The same server, built with our protocol (aiohttp has no hook for its class).
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **self._deadlines,
            **plain._kwargs,
        )
