"""MCP tools over the process service: list, execute, get, logs, stop, kill."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..contract import Shape, doc
from ..process import execution
from ..process.logstore import STDERR, STDOUT
from ..process.managed import ManagedProcess, ProcessSpec
from ..process.output import DEFAULT_WINDOW_BYTES, MAX_WINDOW_BYTES, read_window
from ..process.views import logs_view, process_view
from ..process.wire import Port, ProcessLogsPage, ProcessResponse, Status
from .tools import Arguments, NoArguments, Services, Tool

WAIT_CAP_SECONDS = 58  # an agent's tool call must answer before a 60 s gateway timeout
DEFAULT_TIMEOUT = 30


class ExecuteArguments(Arguments):
    command: Annotated[str, doc("The command line, run by the shell (pipes, redirections and && work)")]
    name: Annotated[
        str, doc("A name to address the process by later, instead of its pid (one is generated if absent)")
    ] = ""
    workingDir: Annotated[str, doc("The directory to run the command in (default /)")] = "/"
    env: Annotated[dict[str, str], doc("Environment variables to set for the command, on top of the sandbox's")] = (
        msgspec.field(default_factory=dict)
    )
    waitForCompletion: Annotated[
        bool,
        doc("Answer only once the command has ended (or after the wait limit), with its exit code and output"),
    ] = False
    timeout: (
        Annotated[
            int,
            doc(
                "How many seconds to wait for completion or for the ports (default 30; 0: no limit). A timeout "
                "ends the wait, not the command, unless keepAlive is set",
                ge=0,
            ),
        ]
        | None
    ) = None
    waitForPorts: Annotated[
        list[Port],
        doc("TCP ports the command will listen on: answer once they all accept connections (within timeout)"),
    ] = msgspec.field(default_factory=list)
    restartOnFailure: Annotated[bool, doc("Start the command again each time it exits with a failure")] = False
    maxRestarts: Annotated[
        int, doc("With restartOnFailure: how many restarts at most (default 0; negative: no limit)")
    ] = 0
    keepAlive: Annotated[
        bool,
        doc(
            "Keep the sandbox from going to sleep while the command runs (for servers and long jobs). The command "
            "is then stopped when its timeout passes (default 600 seconds; 0: never)"
        ),
    ] = False


class Identifier(Arguments):
    identifier: Annotated[str, doc("The process's name or its pid (as returned by processExecute)")]


class ProcessList(Shape, omit_defaults=False):
    processes: Annotated[list[ProcessResponse], doc("One entry per process")]


class ExecuteResult(Shape):
    pid: Annotated[str, doc("Identifier of the process, for the other process tools")]
    name: Annotated[str, doc("Name of the process")]
    status: Annotated[Status, doc("running while it runs, then completed, failed, killed or stopped")]
    exit_code: Annotated[int, doc("Exit code (meaningful once the status is not running)")]
    logs: Annotated[str | None, doc("Its output so far: stdout then stderr (when waited for)")] = None
    message: Annotated[str | None, doc("What to do next when the wait limit was reached")] = None
    poll_required: Annotated[
        bool | None, doc("true when the command still runs after the wait limit: poll processGet")
    ] = None


class LogsArguments(Identifier):
    stdoutOffset: (
        Annotated[
            int,
            doc(
                "Read the output by offset: stdout from this byte offset (0 to start, then stdoutNextOffset). Any of "
                "the offset arguments switches the answer to the by-offset shape",
                ge=0,
            ),
        ]
        | None
    ) = None
    stderrOffset: (
        Annotated[int, doc("stderr from this byte offset (0 to start, then stderrNextOffset)", ge=0)] | None
    ) = None
    maxBytes: (
        Annotated[
            int,
            doc(
                f"At most this many bytes of both streams together (default {DEFAULT_WINDOW_BYTES}, at most "
                f"{MAX_WINDOW_BYTES})",
                ge=1,
            ),
        ]
        | None
    ) = None


# `{logs}` as the original answers; with offsets, the fields of a by-offset read (as `GET
# /process/{identifier}/logs?stdoutOffset=...`). An MCP answer is one object, so this is
# ProcessLogsPage with every field optional, plus `logs`: made from it, not restated.
Logs = msgspec.defstruct(
    "Logs",
    [
        ("logs", Annotated[str | None, doc("Its output: stdout then stderr (without offset arguments)")], None),
        *((f.name, f.type | None, None) for f in msgspec.structs.fields(ProcessLogsPage)),
    ],
    bases=(Shape,),
    module=__name__,
)


class NewStatus(Shape, omit_defaults=False):
    status: Annotated[str, doc("The status the process was given")]


def tools(services: Services) -> list[Tool]:
    settings, supervisor = services.settings, services.supervisor

    def view(proc: ManagedProcess) -> dict[str, Any]:
        return process_view(proc, settings.max_inline_log_bytes)  # completedAt "" while running, as the original

    async def processes_list(_: NoArguments) -> dict[str, Any]:
        return {"processes": [view(p) for p in supervisor.list()]}

    async def process_execute(a: ExecuteArguments) -> dict[str, Any]:
        timeout = DEFAULT_TIMEOUT if a.timeout is None and not a.keepAlive else a.timeout
        spec = ProcessSpec(
            command=a.command,
            name=a.name,
            working_dir=a.workingDir,
            env=a.env,
            restart_on_failure=a.restartOnFailure,
            max_restarts=a.maxRestarts,
            keep_alive=a.keepAlive,
            timeout=timeout,
            unique_name=False,
        )
        started, ended = await execution.execute(
            supervisor, spec, a.waitForPorts, a.waitForCompletion, cap=WAIT_CAP_SECONDS
        )
        proc = started.proc
        result: dict[str, Any] = {"pid": proc.record.pid, "name": proc.record.name}
        if a.waitForCompletion:
            if not ended:
                result.update(
                    pollRequired=True,
                    message=f"Process is still running after {WAIT_CAP_SECONDS} seconds. Poll processGet with this "
                    "pid or name until the status is completed, failed, killed or stopped.",
                )
            logs = logs_view(proc, settings)["logs"]
            if logs:
                result["logs"] = logs
        result.update(status=proc.record.status, exitCode=proc.record.exit_code)
        return result

    async def process_get(a: Identifier) -> dict[str, Any]:
        return view(supervisor.get(a.identifier, f"failed to get process: process not found: {a.identifier}"))

    async def process_logs(a: LogsArguments) -> dict[str, Any]:
        proc = supervisor.get(a.identifier, f"process with PID {a.identifier} not found")
        if a.stdoutOffset is None and a.stderrOffset is None and a.maxBytes is None:
            return {"logs": logs_view(proc, settings)["logs"]}
        offsets = {STDOUT: a.stdoutOffset or 0, STDERR: a.stderrOffset or 0}
        window = min(a.maxBytes or DEFAULT_WINDOW_BYTES, MAX_WINDOW_BYTES)
        return read_window(proc.log, proc.final.is_set(), offsets, window)

    async def process_stop(a: Identifier) -> dict[str, Any]:
        supervisor.stop(a.identifier)
        return {"status": "stopped"}

    async def process_kill(a: Identifier) -> dict[str, Any]:
        await supervisor.kill(a.identifier)
        return {"status": "killed"}

    return [
        Tool(
            "processesList",
            "List every process started in this sandbox, still running or already ended, with its status, exit code "
            "and recent output.",
            NoArguments,
            ProcessList,
            processes_list,
        ),
        Tool(
            "processExecute",
            "Run a shell command in the sandbox. By default it returns at once with the process's pid and name; set "
            "waitForCompletion to get its exit code and output in the answer. A wait lasts at most "
            f"{WAIT_CAP_SECONDS} seconds: past that the command keeps running, the answer says pollRequired and "
            "processGet tells how it ends. For a server or any long job, do not wait: give it a name, use "
            "waitForPorts if it listens, and read its output later with processGetLogs.",
            ExecuteArguments,
            ExecuteResult,
            process_execute,
        ),
        Tool(
            "processGet",
            "Show one process (by name or pid): status, exit code, times and recent output. Poll it to follow a "
            "command that processExecute left running.",
            Identifier,
            ProcessResponse,
            process_get,
        ),
        Tool(
            "processGetLogs",
            "Get the output of a process (by name or pid), running or ended: stdout followed by stderr. For long "
            "output, read it in parts by byte offset: pass stdoutOffset=0 and stderrOffset=0, then the "
            "stdoutNextOffset and stderrNextOffset of each answer, until stdoutEnded and stderrEnded.",
            LogsArguments,
            Logs,
            process_logs,
        ),
        Tool(
            "processStop",
            "Ask a running process (by name or pid) to end: its whole process tree gets SIGTERM. Use processKill if "
            "it does not end.",
            Identifier,
            NewStatus,
            process_stop,
        ),
        Tool(
            "processKill",
            "End a running process (by name or pid) at once: its whole process tree gets SIGKILL.",
            Identifier,
            NewStatus,
            process_kill,
        ),
    ]
