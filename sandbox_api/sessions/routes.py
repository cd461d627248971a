"""HTTP adapter of the shell sessions: /session*."""

from __future__ import annotations

from aiohttp import web

from ..errors import Invalid
from ..http.responses import field, json_response, read_json_object
from .service import Sessions

SESSIONS = web.AppKey("sessions", Sessions)


def _string_map(data: dict, key: str) -> dict[str, str]:
    env = field(data, key, dict, {})
    for name, value in env.items():
        if not isinstance(value, str):
            raise Invalid(f"invalid request body: {key} value of {name} must be a string")
    return env


def _query_int(request: web.Request, name: str, default: int | None) -> int | None:
    raw = request.query.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise Invalid(f"invalid {name} {raw!r}: expected a whole number") from None


async def create_session(request: web.Request) -> web.Response:
    data = await read_json_object(request, required=False)
    view = await request.app[SESSIONS].create(
        name=field(data, "name", str, ""),
        working_dir=field(data, "workingDir", str, ""),
        env=_string_map(data, "env"),
        shell=field(data, "shell", str, ""),
    )
    return json_response(view)


async def list_sessions(request: web.Request) -> web.Response:
    return json_response({"sessions": request.app[SESSIONS].list()})


async def get_session(request: web.Request) -> web.Response:
    return json_response(request.app[SESSIONS].get(request.match_info["id"]))


async def delete_session(request: web.Request) -> web.Response:
    session_id = request.match_info["id"]
    await request.app[SESSIONS].delete(session_id)
    return json_response({"id": session_id, "message": "session deleted"})


async def restart_session(request: web.Request) -> web.Response:
    return json_response(await request.app[SESSIONS].restart(request.match_info["id"]))


async def exec_in_session(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    command = field(data, "command", str, "")
    if not command:
        raise Invalid("invalid request body: command is required")
    result = await request.app[SESSIONS].exec(
        request.match_info["id"],
        command,
        timeout=field(data, "timeout", (int, float)),
        idle_timeout=field(data, "idleTimeout", (int, float)),
    )
    return json_response(result)


async def read_output(request: web.Request) -> web.Response:
    exec_id = request.match_info["execId"]
    if not exec_id.isdigit():
        raise Invalid(f"invalid execId {exec_id!r}: expected the execId an exec answered")
    offset = _query_int(request, "offset", 0)
    assert offset is not None
    answer = request.app[SESSIONS].read_output(
        request.match_info["id"], int(exec_id), offset, _query_int(request, "maxBytes", None)
    )
    return json_response(answer)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/session", create_session)
    r.add_get("/session", list_sessions, allow_head=False)
    r.add_get("/session/{id}", get_session, allow_head=False)
    r.add_delete("/session/{id}", delete_session)
    r.add_post("/session/{id}/restart", restart_session)
    r.add_post("/session/{id}/exec", exec_in_session)
    r.add_get("/session/{id}/output/{execId}", read_output, allow_head=False)
