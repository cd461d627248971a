"""The MCP `bash` tool: Anthropic's published bash tool contract (`command`, `restart`) on one
persistent default session, plus `sessionId` to use a session made with `POST /session`."""

from __future__ import annotations

from typing import Annotated, Any

from ..contract import Shape, doc
from ..errors import Invalid
from ..sessions.wire import MAX_TIMEOUT
from .tools import Arguments, Services, Tool

DEFAULT_SESSION = "default"
# An agent's tool call must answer before a 60 s gateway timeout (as process_tools.py).
DEFAULT_TIMEOUT = 58.0

DESCRIPTION = (
    "Run a command in a persistent shell (bash when installed) and get its output. The shell stays between "
    "calls: the working directory, exported variables, shell functions and aliases carry over, as in a terminal "
    "you keep typing into. stdout and stderr come back together, in the order written, with the command's exit "
    "code and the directory the shell is in afterwards. The command's stdin is empty: anything that asks for "
    "input gets end-of-file instead of waiting, so pass answers as flags or arguments (e.g. `apt-get install -y`). "
    f"A command still running after timeout seconds (default {DEFAULT_TIMEOUT:g}) is interrupted like Ctrl-C, then "
    "killed; the shell stays usable and timedOut is true. Start servers and long jobs in the background with "
    "their output in a file (`cmd > /tmp/cmd.log 2>&1 &`), or use processExecute. Long output keeps its beginning "
    "and end; the middle is left out. If the shell exits (exit, exec) or gets stuck, call again with restart: "
    "true for a fresh shell."
)


class BashArguments(Arguments):
    command: Annotated[str, doc("The command line to run (required unless restart is set)")] = ""
    restart: Annotated[bool, doc("Kill the shell and everything it started, and start a fresh one")] = False
    sessionId: Annotated[
        str,
        doc(
            f"The session to use (default: {DEFAULT_SESSION!r}, made on first use); others are made with POST /session"
        ),
    ] = ""
    timeout: (
        Annotated[
            float,
            doc(
                f"Seconds before the command is interrupted (default {DEFAULT_TIMEOUT:g}; 0: no limit)",
                ge=0,
                le=MAX_TIMEOUT,
            ),
        ]
        | None
    ) = None


class BashResult(Shape):
    session_id: Annotated[str, doc("The session the command ran in")]
    output: Annotated[str, doc("What the command printed, stdout and stderr interleaved (head and tail when long)")]
    exit_code: Annotated[int | None, doc("The command's exit code (130: interrupted, 137: killed)")] = None
    timed_out: Annotated[bool | None, doc("true when the command was interrupted at its timeout")] = None
    cwd: Annotated[str | None, doc("The shell's working directory after the command")] = None
    exec_id: Annotated[int | None, doc("Number of the command in its session")] = None
    output_bytes: Annotated[int | None, doc("Bytes the command printed in all")] = None
    truncated: Annotated[bool | None, doc("true when the middle of the output was left out")] = None
    omitted_from: Annotated[int | None, doc("Offset of the first byte left out")] = None
    omitted_to: Annotated[int | None, doc("Offset after the last byte left out")] = None
    session_ended: Annotated[bool | None, doc("true when the shell itself ended (exit, exec): restart it")] = None
    end_reason: Annotated[str | None, doc("How the shell ended")] = None
    restarted: Annotated[bool | None, doc("true when the answer is to a restart")] = None
    note: Annotated[
        str | None, doc("Said when the default shell had to be made anew (the previous one sat idle too long)")
    ] = None


def tools(services: Services) -> list[Tool]:
    sessions = services.sessions
    if sessions is None:
        return []

    async def bash(a: BashArguments) -> dict[str, Any]:
        session_id = a.sessionId or DEFAULT_SESSION
        if not a.command and not a.restart:
            raise Invalid("command is required (or restart: true)")
        note = await sessions().ensure(session_id) if session_id == DEFAULT_SESSION else ""
        if a.restart:
            view = await sessions().restart(session_id)
            return {"sessionId": session_id, "output": "", "cwd": view["cwd"], "restarted": True}
        result = await sessions().exec(
            session_id, a.command, timeout=DEFAULT_TIMEOUT if a.timeout is None else a.timeout
        )
        return {**result, "note": note} if note else result

    return [Tool("bash", DESCRIPTION, BashArguments, BashResult, bash)]
