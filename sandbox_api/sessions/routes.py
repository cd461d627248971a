"""HTTP adapter of the shell sessions: /session*."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..contract import decode_body
from ..errors import Invalid
from ..http import operations
from ..http.operations import Failure, Media, Operation, Param
from ..http.responses import json_response
from ..lazy import OnFirstUse
from .wire import (
    OUTPUTS_KEPT,
    ExecRequest,
    ExecResult,
    OutputChunk,
    OutputQuery,
    OutputRangeError,
    SessionConflictError,
    SessionDeleted,
    SessionLimitError,
    SessionList,
    SessionRequest,
    SessionView,
)

if TYPE_CHECKING:
    from .service import Sessions

SESSIONS: web.AppKey[OnFirstUse[Sessions]] = web.AppKey("sessions")  # built on the first call


async def create_session(request: web.Request) -> web.Response:
    raw = await request.read()
    body = decode_body(raw, SessionRequest) if raw.strip() else SessionRequest()  # no body: every default
    view = await request.app[SESSIONS]().create(
        name=body.name or "", working_dir=body.working_dir or "", env=body.env or {}, shell=body.shell or ""
    )
    return json_response(view)


async def list_sessions(request: web.Request) -> web.Response:
    return json_response({"sessions": request.app[SESSIONS]().list()})


async def get_session(request: web.Request) -> web.Response:
    return json_response(request.app[SESSIONS]().get(request.match_info["id"]))


async def delete_session(request: web.Request) -> web.Response:
    session_id = request.match_info["id"]
    await request.app[SESSIONS]().delete(session_id)
    return json_response({"id": session_id, "message": "session deleted"})


async def restart_session(request: web.Request) -> web.Response:
    return json_response(await request.app[SESSIONS]().restart(request.match_info["id"]))


async def exec_in_session(request: web.Request) -> web.Response:
    body = await operations.body(request, ExecRequest)
    result = await request.app[SESSIONS]().exec(
        request.match_info["id"], body.command, timeout=body.timeout, idle_timeout=body.idle_timeout
    )
    return json_response(result)


async def read_output(request: web.Request) -> web.Response:
    exec_id = request.match_info["execId"]
    if not exec_id.isdigit():
        raise Invalid(f"invalid execId {exec_id!r}: expected the execId an exec answered")
    query = operations.query(request, OutputQuery)
    answer = request.app[SESSIONS]().read_output(request.match_info["id"], int(exec_id), query.offset, query.max_bytes)
    return json_response(answer)


SESSION_ID = Param("id", "The session's id (its name when one was given).")
EXEC_ID = Param("execId", "The `execId` an exec answered.", {"type": "integer", "minimum": 1})
NOT_FOUND = {404: Failure("No such session.")}

OPERATIONS = (
    Operation(
        "POST",
        "/session",
        create_session,
        "sessions",
        "Start a shell session",
        {
            200: SessionView,
            400: Failure(
                "An invalid body (`invalid request body: ...`), an invalid name, a shell that is not one of the "
                "listed or not installed, a missing working directory, an invalid environment variable, or the "
                "shell could not start."
            ),
            409: Failure("A session with this name exists."),
            429: Media(
                {"application/json": SessionLimitError}, "`SANDBOX_SESSION_MAX` sessions exist (`limit`): delete one."
            ),
        },
        description="A persistent shell on a pty: the working directory, exported variables, functions and "
        "aliases carry over from one command to the next. Sessions do not survive the daemon.",
        body=SessionRequest,
        body_required=False,
    ),
    Operation("GET", "/session", list_sessions, "sessions", "List shell sessions", {200: SessionList}),
    Operation(
        "GET",
        "/session/{id}",
        get_session,
        "sessions",
        "Get a shell session",
        {200: SessionView, **NOT_FOUND},
        params=(SESSION_ID,),
    ),
    Operation(
        "DELETE",
        "/session/{id}",
        delete_session,
        "sessions",
        "Delete a shell session",
        {200: SessionDeleted, **NOT_FOUND},
        description="Kills the shell and every process it started, and forgets the session.",
        params=(SESSION_ID,),
    ),
    Operation(
        "POST",
        "/session/{id}/restart",
        restart_session,
        "sessions",
        "Restart a shell session",
        {
            200: SessionView,
            400: Failure("The shell could not start (the session is then ended)."),
            **NOT_FOUND,
            409: Failure("The session is starting."),
        },
        description="Kills the shell and all it started; a fresh one starts in `workingDir` with `env`.",
        params=(SESSION_ID,),
    ),
    Operation(
        "POST",
        "/session/{id}/exec",
        exec_in_session,
        "sessions",
        "Run a command in a shell session",
        {
            200: ExecResult,
            400: Failure(
                "An invalid body (`invalid request body: ...`), a command with a NUL byte or over 1 MiB, a timeout "
                "out of range."
            ),
            **NOT_FOUND,
            409: Media(
                {"application/json": SessionConflictError},
                "The session has ended (`endReason` says how: restart or delete it), or runs a command already "
                "(one at a time).",
            ),
        },
        description="The command runs in the shell itself (cd, export, functions persist) with stdin at EOF; "
        "stdout and stderr come as one stream. Past `timeout` or `idleTimeout` its job gets SIGINT, then SIGKILL "
        "2 s later; the session stays usable. A command that ends the shell answers `sessionEnded: true`.",
        params=(SESSION_ID,),
        body=ExecRequest,
    ),
    Operation(
        "GET",
        "/session/{id}/output/{execId}",
        read_output,
        "sessions",
        "Read a command's output by offset",
        {
            200: OutputChunk,
            400: Failure("execId, offset or maxBytes not a whole number, out of range, or offset past the end."),
            404: Failure(f"No such session, or the output is no longer kept (the last {OUTPUTS_KEPT} commands' are)."),
            416: Media(
                {"application/json": OutputRangeError},
                "The offset is past the bytes kept on disk (`storedBytes`): the rest was not kept.",
            ),
        },
        description="Start at `offset=0` (or `omittedFrom`) and go on from each `nextOffset` until `eof`.",
        params=(SESSION_ID, EXEC_ID),
        query=OutputQuery,
    ),
)


def add_routes(app: web.Application) -> None:
    operations.register(app, OPERATIONS)
