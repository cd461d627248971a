"""The shell sessions' wire shapes, declared once (see contract.py): HTTP validation, the
OpenAPI document and the MCP `bash` tool all use these."""

from __future__ import annotations

from typing import Annotated, Literal

from ..contract import Shape, doc

OUTPUTS_KEPT = 4  # per session: the outputs of its last commands, readable by offset
MAX_TIMEOUT = 7 * 24 * 3600.0
DEFAULT_TIMEOUT = 120.0
MAX_READ_BYTES = 4 * 1024 * 1024
DEFAULT_READ_BYTES = 64 * 1024

State = Literal["starting", "idle", "running", "ended"]


class SessionRequest(Shape):
    """A new shell session; every field is optional (an empty body is fine)."""

    name: Annotated[
        str | None,
        doc(
            "Its id: 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit (default: a generated "
            "`session-<hex>`)."
        ),
    ] = None
    working_dir: Annotated[
        str | None, doc("Where the shell starts, and restarts (default: the daemon's working directory).")
    ] = None
    env: Annotated[dict[str, str] | None, doc("Variables added to the daemon's environment for the shell.")] = None
    shell: Annotated[
        str | None,
        doc("bash, sh, dash, ash, zsh, ksh or mksh, as a name or a path (default: bash when installed, else sh)."),
    ] = None


class SessionView(Shape):
    """A shell session as the daemon knows it."""

    id: Annotated[str, doc("The session's id: its name, or a generated `session-<hex>`.")]
    state: Annotated[State, doc("`starting`, `idle`, `running` (a command runs) or `ended` (restart or delete it).")]
    shell: Annotated[str, doc("The shell program's path.")]
    cwd: Annotated[str, doc("The shell's working directory after its last command.")]
    working_dir: Annotated[str, doc("The directory it started in (and restarts in).")]
    pid: Annotated[int | None, doc("The shell's pid; null once ended.")]
    created_at: Annotated[str, doc("When it was made (RFC 3339, UTC).")]
    last_used_at: Annotated[
        str, doc("When it was last used (RFC 3339, UTC); it is deleted `SANDBOX_SESSION_IDLE_SECONDS` after that.")
    ]
    exec_count: Annotated[int, doc("Commands run so far (the last `execId`).")]
    end_reason: Annotated[
        str | None, doc("Once ended: how (`the shell exited with code 0`, `the shell was killed by SIGKILL`...).")
    ] = None


class SessionList(Shape, omit_defaults=False):
    sessions: Annotated[list[SessionView], doc("Every session, in the order they were made.")]


class SessionDeleted(Shape, omit_defaults=False):
    id: Annotated[str, doc("The session deleted.")]
    message: Annotated[str, doc("`session deleted`.")]


class ExecRequest(Shape):
    """A command to run in the shell itself."""

    command: Annotated[str, doc("The command line (up to 1 MiB, no NUL byte).", min_length=1)]
    timeout: (
        Annotated[
            float,
            doc(
                f"Seconds before the command's job is interrupted (SIGINT, then SIGKILL 2 s later); default "
                f"{DEFAULT_TIMEOUT:g}, 0: no limit.",
                ge=0,
                le=MAX_TIMEOUT,
            ),
        ]
        | None
    ) = None
    idle_timeout: (
        Annotated[
            float,
            doc(
                "Seconds without output before it is interrupted the same way (default and 0: no limit).",
                ge=0,
                le=MAX_TIMEOUT,
            ),
        ]
        | None
    ) = None


class ExecResult(Shape):
    """What a command did."""

    session_id: Annotated[str, doc("The session the command ran in.")]
    exec_id: Annotated[int, doc("Number of this command in its session: its output is read back with it.")]
    output: Annotated[
        str,
        doc(
            "stdout and stderr as one stream, in the order written. Past `SANDBOX_SESSION_INLINE_BYTES`: the head, "
            "a line saying which bytes were left out, and the tail."
        ),
    ]
    exit_code: Annotated[
        int | None, doc("The command's exit code (130 after SIGINT, 137 after SIGKILL); null when unknown.")
    ]
    timed_out: Annotated[bool, doc("Interrupted at `timeout` or after `idleTimeout` seconds without output.")]
    cwd: Annotated[str, doc("The shell's working directory afterwards.")]
    output_bytes: Annotated[int, doc("Bytes the command wrote in all.")]
    truncated: Annotated[bool, doc("Whether `output` leaves out a middle part (read it by offset).")]
    session_ended: Annotated[
        bool, doc("The command ended the shell (exit, exec, kill): later commands answer 409 until a restart.")
    ]
    omitted_from: Annotated[int | None, doc("When truncated: offset of the first byte left out.")] = None
    omitted_to: Annotated[int | None, doc("When truncated: offset after the last byte left out.")] = None
    end_reason: Annotated[str | None, doc("When the session ended: how.")] = None


class OutputQuery(Shape):
    offset: Annotated[int, doc("Byte offset to read from (start at 0, then each `nextOffset`).", ge=0)] = 0
    max_bytes: Annotated[int, doc("At most this many bytes.", ge=1, le=MAX_READ_BYTES)] = DEFAULT_READ_BYTES


class OutputChunk(Shape, omit_defaults=False):
    """A part of a command's output."""

    session_id: Annotated[str, doc("The session.")]
    exec_id: Annotated[int, doc("The command.")]
    offset: Annotated[int, doc("Where this part starts.")]
    next_offset: Annotated[int, doc("Where the next read starts (the data ends on a character boundary).")]
    data: Annotated[str, doc("The bytes read, as UTF-8 text.")]
    output_bytes: Annotated[int, doc("Bytes the command wrote so far.")]
    stored_bytes: Annotated[
        int, doc("Bytes kept to read (past `SANDBOX_SESSION_MAX_OUTPUT_BYTES` the rest is not kept).")
    ]
    complete: Annotated[bool, doc("The command has ended.")]
    eof: Annotated[bool, doc("The command has ended and everything kept was read.")]


# Error answers that carry a key besides `error`.


class SessionLimitError(Shape, omit_defaults=False):
    error: Annotated[str, doc("What went wrong.")]
    limit: Annotated[int, doc("The most sessions at once (`SANDBOX_SESSION_MAX`).")]


class SessionConflictError(Shape):
    error: Annotated[str, doc("What went wrong.")]
    end_reason: Annotated[str | None, doc("When the session has ended: how (restart or delete it).")] = None


class OutputRangeError(Shape, omit_defaults=False):
    error: Annotated[str, doc("What went wrong.")]
    stored_bytes: Annotated[int, doc("Bytes of this output kept on disk: read below this offset.")]
