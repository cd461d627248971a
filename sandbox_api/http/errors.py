"""One error model: every failure becomes the contract's response.

- our typed errors (`sandbox_api.errors`) -> their status and `{"error": ...}`;
- an unknown route, or a known route with the wrong method -> plain-text
  `404 page not found` (the SDKs use it to detect an older daemon);
- aiohttp's own HTTP errors on known routes (body too large, ...) -> JSON;
- a malformed body met while reading it (multipart headers...) -> 400 JSON;
- anything unexpected -> 500 JSON, with the traceback in the log.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from ..errors import ApiError
from .responses import error_body, json_response

log = logging.getLogger("sandbox_api.http")

NOT_FOUND_TEXT = "404 page not found"


def not_found() -> web.Response:
    return web.Response(status=404, text=NOT_FOUND_TEXT, content_type="text/plain", charset="utf-8")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        response = json_response(error_body(e.message, **e.extra), status=e.status)
        response.headers.update(e.headers)
        return response
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as e:
        if request.match_info.http_exception is not None:
            return not_found()  # the router found no route
        return json_response(error_body(e.text or e.reason), status=e.status)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        if e.status == 413:
            message = "request body too large"
        else:
            message = e.text if e.text and not e.text.startswith(f"{e.status}:") else e.reason
        return json_response(error_body(message), status=e.status)
    except HttpProcessingError as e:
        # A malformed body found while a handler reads it (a multipart part's headers...).
        status = e.code if 400 <= e.code < 500 else 400
        return json_response(error_body(f"invalid request body: {e.message}"), status=status)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as e:
        log.exception("%s %s failed", request.method, request.path)
        return json_response(error_body(f"internal error: {e}"), status=500)
