"""The process API's wire shapes, declared once (see contract.py): HTTP validation, the
OpenAPI document and the MCP tools all use these."""

from __future__ import annotations

from typing import Annotated, Literal

from ..contract import Shape, doc

Port = Annotated[int, doc("A TCP port.", ge=1, le=65535)]
Status = Literal["running", "completed", "failed", "stopped", "killed"]


class ProcessRequest(Shape):
    """What to run, and how long to wait for it."""

    command: Annotated[str, doc("The shell command line, run as `[$SHELL or sh, -c, command]`.", min_length=1)]
    name: Annotated[str | None, doc("A name to address the process by (default `proc-` and 8 random characters).")] = (
        None
    )
    working_dir: Annotated[str | None, doc("Directory to run in (default: the daemon's working directory).")] = None
    env: Annotated[dict[str, str] | None, doc("Variables added to the daemon's environment.")] = None
    wait_for_completion: Annotated[
        bool | None, doc("Answer once the process is over (after every restart), with its output.")
    ] = None
    timeout: (
        Annotated[
            int,
            doc(
                "Seconds to wait at most (0: no limit); when it runs out the answer is 422 and the process keeps "
                "running. For keepAlive processes it also kills the tree (default 600).",
                ge=0,
            ),
        ]
        | None
    ) = None
    wait_for_ports: Annotated[
        list[Port] | None, doc("Answer once every one of these ports is served by the process tree.")
    ] = None
    restart_on_failure: Annotated[bool | None, doc("Start it again when it exits with a failure.")] = None
    max_restarts: Annotated[int | None, doc("How many restarts are allowed (negative: no limit).")] = None
    keep_alive: Annotated[
        bool | None, doc("Keep the sandbox from scaling to zero while the process runs (killed after `timeout`).")
    ] = None
    stdin: Annotated[bool | None, doc("Keep a stdin pipe open (write with `POST /process/{identifier}/stdin`).")] = None


class ProcessResponse(Shape, omit_defaults=False):
    """A process as the daemon knows it."""

    pid: Annotated[str, doc("The OS pid of the first spawn (as text), stable across restarts.")]
    name: Annotated[str, doc("Its name, given or generated; use it or the pid to address the process.")]
    command: Annotated[str, doc("The shell command line it runs.")]
    status: Annotated[Status, doc("`running` while it runs, then how it ended.")]
    started_at: Annotated[str, doc("When it started (RFC 1123: `Mon, 02 Jan 2006 15:04:05 GMT`).")]
    completed_at: Annotated[str | None, doc('When it ended; `""` while it runs (`null` in the list).')]
    exit_code: Annotated[int, doc("Its exit code once ended (-1 when a signal ended it).")]
    working_dir: Annotated[str, doc("The directory it runs in.")]
    logs: Annotated[str | None, doc("Recent output, stdout then stderr; `null` on a start without output yet.")]
    stdout: Annotated[str | None, doc("Recent standard output.")]
    stderr: Annotated[str | None, doc("Recent standard error.")]
    restart_on_failure: Annotated[bool, doc("Whether it is started again when it fails.")]
    max_restarts: Annotated[int, doc("How many restarts are allowed (negative: no limit).")]
    restart_count: Annotated[int, doc("How many times it was restarted so far.")]
    keep_alive: Annotated[bool, doc("Whether it keeps the sandbox from scaling to zero while it runs.")]
    stdin: Annotated[bool | None, doc("Whether it has a stdin pipe one can write to.")] = None


class ProcessLogs(Shape, omit_defaults=False):
    """A process's output as kept on disk (up to the inline cap per stream)."""

    stdout: str
    stderr: str
    logs: Annotated[str, doc("stdout then stderr.")]


class ProcessEvent(Shape):
    """One line of the NDJSON stream of `POST /process` with `Accept: text/event-stream`."""

    type: Literal["stdout", "stderr", "keepalive", "result", "error"]
    data: Annotated[
        str | None, doc("Complete lines joined by `\\n`; for `result`, the ProcessResponse as JSON text.")
    ] = None


class StdinResponse(Shape, omit_defaults=False):
    path: str
    message: str
    bytes: Annotated[int, doc("How many bytes were written.")]


class WaitQuery(Shape):
    timeout: Annotated[float, doc("Seconds to wait at most.", ge=0, le=3600)] = 60
