"""The process API's wire shapes, declared once (see contract.py): HTTP validation, the
OpenAPI document and the MCP tools all use these."""

from __future__ import annotations

from typing import Annotated, Literal

from ..contract import Shape, doc
from .output import DEFAULT_WINDOW_BYTES, MAX_WINDOW_BYTES

Port = Annotated[int, doc("A TCP port.", ge=1, le=65535)]
Status = Literal["running", "completed", "failed", "stopped", "killed"]
EndReason = Literal["exited", "signaled", "timeout", "stopped", "killed", "unknown"]


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
    end_reason: Annotated[
        EndReason | None,
        doc(
            "Once it ended, how: `exited` (its own exit, see exitCode), `signaled` (a signal nobody asked for "
            "here, see endSignal), `timeout` (a keepAlive process killed at its timeout), `stopped`/`killed` "
            "(through the API), `unknown` (it ended while the daemon was not running). Absent while it runs."
        ),
    ] = None
    end_signal: Annotated[str | None, doc("The signal that ended it (`SIGKILL`, `SIGSEGV`...), when a signal did.")] = (
        None
    )


class ProcessLogs(Shape, omit_defaults=False):
    """A process's output as kept on disk (up to the inline cap per stream)."""

    stdout: str
    stderr: str
    logs: Annotated[str, doc("stdout then stderr.")]


class ProcessEvent(Shape):
    """One line of the NDJSON stream of `POST /process` with `Accept: text/event-stream`."""

    type: Literal["stdout", "stderr", "keepalive", "result", "error", "started"]
    data: Annotated[
        str | None,
        doc(
            "Complete lines joined by `\\n`; for `result`, the ProcessResponse as JSON text; for `started` (only "
            "with `offsets=true`), the process's pid."
        ),
    ] = None
    offset: Annotated[
        int | None,
        doc(
            "Only with offsets asked for (`offsets=true`, or a resumed stream): on a `stdout`/`stderr` event, the "
            "offset in that stream just past this event's lines; resume from the last one seen of each stream."
        ),
    ] = None


class StdinResponse(Shape, omit_defaults=False):
    path: str
    message: str
    bytes: Annotated[int, doc("How many bytes were written.")]


class WaitQuery(Shape):
    timeout: Annotated[float, doc("Seconds to wait at most.", ge=0, le=3600)] = 60


# --- output by offset (GET /process/{identifier}/logs?stdoutOffset=..., resumable streams) ---


class LogsQuery(Shape):
    """Any of these asks for the output by offset (a ProcessLogsPage); without them the answer is ProcessLogs."""

    stdout_offset: (
        Annotated[int, doc("Read stdout from this byte offset (0: its first byte; default 0).", ge=0)] | None
    ) = None
    stderr_offset: (
        Annotated[int, doc("Read stderr from this byte offset (0: its first byte; default 0).", ge=0)] | None
    ) = None
    max_bytes: (
        Annotated[
            int,
            doc(
                f"At most this many bytes of both streams together (default {DEFAULT_WINDOW_BYTES}, at most "
                f"{MAX_WINDOW_BYTES}: more is capped); when both have more, each gets half.",
                ge=1,
                le=MAX_WINDOW_BYTES,
                extra={"clamp": True},
            ),
        ]
        | None
    ) = None
    encoding: Annotated[
        Literal["utf-8", "base64"] | None,
        doc("`utf-8` (default): text cut on a character boundary; `base64`: the exact bytes."),
    ] = None


class ProcessLogsPage(Shape, omit_defaults=False):
    """A part of a process's output read by byte offset, and where to go on from."""

    stdout: Annotated[str, doc("stdout from `stdoutOffset` (text, or base64 with `encoding=base64`).")]
    stderr: Annotated[str, doc("stderr from `stderrOffset`.")]
    stdout_offset: Annotated[int, doc("Where `stdout` starts.")]
    stderr_offset: Annotated[int, doc("Where `stderr` starts.")]
    stdout_next_offset: Annotated[int, doc("The stdoutOffset of the next read.")]
    stderr_next_offset: Annotated[int, doc("The stderrOffset of the next read.")]
    stdout_size: Annotated[int, doc("Bytes written to stdout so far.")]
    stderr_size: Annotated[int, doc("Bytes written to stderr so far.")]
    stdout_oldest_offset: Annotated[
        int, doc("The oldest stdout offset still kept (above 0 once the cap dropped the head).")
    ]
    stderr_oldest_offset: Annotated[int, doc("The oldest stderr offset still kept.")]
    stdout_ended: Annotated[bool, doc("The process is over and all of stdout was read: nothing more will come.")]
    stderr_ended: Annotated[bool, doc("The process is over and all of stderr was read.")]
    encoding: Annotated[Literal["utf-8", "base64"], doc("How `stdout` and `stderr` are written.")]


class LogRangeError(Shape, omit_defaults=False):
    """416: an offset whose bytes the size cap dropped (`SANDBOX_MAX_LOG_FILE_BYTES`)."""

    error: Annotated[str, doc("Which offset, and the oldest one still kept.")]
    stdout_oldest_offset: Annotated[int, doc("The oldest stdout offset still kept: read from there.")]
    stderr_oldest_offset: Annotated[int, doc("The oldest stderr offset still kept.")]


class LogStreamQuery(Shape):
    """Resume a stream: the lines before the offsets are not sent again."""

    stdout_offset: Annotated[int, doc("Resume stdout at this byte offset (default: replay from 0).", ge=0)] | None = (
        None
    )
    stderr_offset: Annotated[int, doc("Resume stderr at this byte offset (default: replay from 0).", ge=0)] | None = (
        None
    )
    format: Annotated[
        Literal["text", "ndjson"] | None,
        doc(
            "`text` (default): `stdout:<line>` lines, and with an offset given an `[offsets] stdout=N stderr=M` line "
            "after each batch. `ndjson`: the events of `POST /process` streaming, each with its `offset`, ending "
            "with `result` once the process is over."
        ),
    ] = None


class ExecStreamQuery(Shape):
    offsets: Annotated[
        bool | None,
        doc(
            "With `Accept: text/event-stream`: start with a `started` event (the pid) and give each output event "
            "its `offset`, to resume with `GET /process/{identifier}/logs/stream?format=ndjson&stdoutOffset=...`."
        ),
    ] = None
