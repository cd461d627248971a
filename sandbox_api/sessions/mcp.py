"""The MCP `bash` tool: Anthropic's published bash tool contract (`command`, `restart`) on one
persistent default session, plus `sessionId` to use a session made with `POST /session`."""

from __future__ import annotations

from typing import Any

from ..errors import Invalid
from ..mcp.tools import Tool, obj, s
from .service import Sessions

DEFAULT_SESSION = "default"
# An agent's tool call must answer before a 60 s gateway timeout (as mcp/tools.py).
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

RESULT = obj(
    {
        "sessionId": s("The session the command ran in"),
        "output": s("What the command printed, stdout and stderr interleaved (head and tail when long)"),
        "exitCode": s("The command's exit code (130: interrupted, 137: killed)", ["null", "integer"]),
        "timedOut": s("true when the command was interrupted at its timeout", "boolean"),
        "cwd": s("The shell's working directory after the command"),
        "execId": s("Number of the command in its session", "integer"),
        "outputBytes": s("Bytes the command printed in all", "integer"),
        "truncated": s("true when the middle of the output was left out", "boolean"),
        "omittedFrom": s("Offset of the first byte left out", "integer"),
        "omittedTo": s("Offset after the last byte left out", "integer"),
        "sessionEnded": s("true when the shell itself ended (exit, exec): restart it", "boolean"),
        "endReason": s("How the shell ended"),
        "restarted": s("true when the answer is to a restart", "boolean"),
        "note": s("Said when the default shell had to be made anew (the previous one sat idle too long)"),
    },
    ("sessionId", "output"),
)


def session_tools(sessions: Sessions) -> list[Tool]:
    async def bash(
        command: str = "", restart: bool = False, sessionId: str = "", timeout: float | None = None
    ) -> dict[str, Any]:
        session_id = sessionId or DEFAULT_SESSION
        if not command and not restart:
            raise Invalid("command is required (or restart: true)")
        note = await sessions.ensure(session_id) if session_id == DEFAULT_SESSION else ""
        if restart:
            view = await sessions.restart(session_id)
            return {"sessionId": session_id, "output": "", "cwd": view["cwd"], "restarted": True}
        result = await sessions.exec(session_id, command, timeout=DEFAULT_TIMEOUT if timeout is None else timeout)
        return {**result, "note": note} if note else result

    return [
        Tool(
            "bash",
            DESCRIPTION,
            obj(
                {
                    "command": s("The command line to run (required unless restart is set)"),
                    "restart": s("Kill the shell and everything it started, and start a fresh one", "boolean"),
                    "sessionId": s(
                        f"The session to use (default: {DEFAULT_SESSION!r}, made on first use); others are made "
                        "with POST /session"
                    ),
                    "timeout": s(
                        f"Seconds before the command is interrupted (default {DEFAULT_TIMEOUT:g}; 0: no limit)",
                        "number",
                    ),
                },
            ),
            RESULT,
            bash,
        )
    ]
