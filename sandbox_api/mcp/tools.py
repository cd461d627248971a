"""The MCP tools: one per service call, with the original's names, schemas and shapes.

Each handler calls the same service as the matching HTTP route (the supervisor, the
filesystem service, search); nothing here re-implements a behaviour. `transport.py`
speaks the protocol (JSON-RPC over streamable HTTP) and calls them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..codegen.service import Codegen
from ..config import Settings
from ..errors import ApiError, Invalid
from ..filesystem.files import Files, os_error_text, parse_permissions
from ..http import paths
from ..process.supervisor import ProcessSpec, Supervisor, wait_timeout_message
from ..process.views import logs_view, process_view
from ..search import fuzzy
from ..search.content import ContentSearch

if TYPE_CHECKING:
    from ..sessions.service import Sessions

WAIT_CAP_SECONDS = 58  # an agent's tool call must answer before a 60 s gateway timeout
DEFAULT_TIMEOUT = 30

Handler = Callable[..., Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    handler: Handler


def without_fraction(timestamp: str) -> str:
    """RFC 3339 without the fractional seconds ("...05.123Z" -> "...05Z")."""
    head, dot, rest = timestamp.partition(".")
    if not dot:
        return timestamp
    zone = rest.lstrip("0123456789")
    return head + zone


def obj(properties: dict[str, Any], required: tuple[str, ...] = (), description: str = "") -> dict[str, Any]:
    """A closed object schema (additionalProperties: false), as go-sdk generates."""
    schema = {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}
    return {**schema, "description": description} if description else schema


def s(description: str, kind: str | list[str] = "string", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "description": description, **extra}


STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
NULLABLE_STRING = ["null", "string"]
PROCESS_STATUS = s("running while it runs, then completed, failed, killed or stopped")
PROCESS_STATUS["enum"] = ["running", "completed", "failed", "killed", "stopped"]
PROCESS = obj(
    {
        "pid": s("Identifier of the process (the OS pid, as text); use it or the name to address the process"),
        "name": s("Name of the process, as given or generated"),
        "command": s("The shell command line it runs"),
        "status": PROCESS_STATUS,
        "startedAt": s("When it started (HTTP date)"),
        "completedAt": s('When it ended (HTTP date); "" while it runs', NULLABLE_STRING),
        "exitCode": s("Exit code once ended (-1 when ended by a signal)", "integer"),
        "workingDir": s("Directory it runs in"),
        "logs": s("Recent output: stdout then stderr", NULLABLE_STRING),
        "stdout": s("Recent standard output", NULLABLE_STRING),
        "stderr": s("Recent standard error", NULLABLE_STRING),
        "restartOnFailure": s("Whether it is started again when it fails", "boolean"),
        "maxRestarts": s("How many restarts are allowed (negative: no limit)", "integer"),
        "restartCount": s("How many times it was restarted so far", "integer"),
        "keepAlive": s("Whether it keeps the sandbox from going to sleep while it runs", "boolean"),
        "stdin": s("Whether it has a standard input pipe one can write to", "boolean"),
    },
    (
        "pid",
        "name",
        "command",
        "status",
        "startedAt",
        "completedAt",
        "exitCode",
        "workingDir",
        "logs",
        "stdout",
        "stderr",
        "restartOnFailure",
        "maxRestarts",
        "restartCount",
        "keepAlive",
    ),
)
FILE = obj(
    {
        "path": s("Absolute path of the file"),
        "name": s("Base name of the file"),
        "permissions": s("Mode bits in octal, e.g. 644"),
        "size": s("Size in bytes", "integer"),
        "lastModified": s("Last modification time (RFC 3339)"),
        "owner": s("Owning user"),
        "group": s("Owning group"),
    },
    ("path", "name", "permissions", "size", "lastModified", "owner", "group"),
)
SUBDIRECTORY = obj({"path": s("Absolute path of the subdirectory"), "name": s("Its base name")}, ("path", "name"))
DIRECTORY = obj(
    {
        "path": s("Absolute path of the directory"),
        "name": s("Base name of the directory"),
        "files": {"type": "array", "items": FILE, "description": "The files it holds (not recursive)"},
        "subdirectories": {"type": "array", "items": SUBDIRECTORY, "description": "Its direct subdirectories"},
    },
    ("path", "name", "files", "subdirectories"),
    "The directory's entries",
)
MESSAGE = obj({"path": s("The path acted on"), "message": s("What was done")}, ("path", "message"))
SUCCESS = s("true when the tool did its work", "boolean")
NOTE = s("A human-readable note on the outcome")
IDENTIFIER = obj({"identifier": s("The process's name or its pid (as returned by processExecute)")}, ("identifier",))
NEW_STATUS = obj({"status": s("The status the process was given")}, ("status",))


class Tools:
    """Builds the tool list against the daemon's services."""

    def __init__(
        self,
        settings: Settings,
        supervisor: Supervisor,
        files: Files,
        content: ContentSearch,
        codegen: Codegen,
        codegen_enabled: bool,
        sessions: Sessions | None = None,
    ) -> None:
        self.settings = settings
        self.supervisor = supervisor
        self.files = files
        self.content = content
        self.codegen = codegen
        self.codegen_enabled = codegen_enabled  # decided at start-up, as the original registers them
        self.sessions = sessions

    def _path(self, value: str) -> paths.ResolvedPath:
        # MCP paths go straight to the filesystem: relative to WORKDIR, no `~`, no %2F rule.
        return paths.from_value(value, self.settings.workdir)

    def all(self) -> list[Tool]:
        return [
            # --- processes -------------------------------------------------------------------------
            Tool(
                "processesList",
                "List every process started in this sandbox, still running or already ended, with its status, "
                "exit code and recent output.",
                obj({}),
                obj(
                    {"processes": {"type": "array", "items": PROCESS, "description": "One entry per process"}},
                    ("processes",),
                ),
                self.processes_list,
            ),
            Tool(
                "processExecute",
                "Run a shell command in the sandbox. By default it returns at once with the process's pid and "
                "name; set waitForCompletion to get its exit code and output in the answer. A wait lasts at most "
                f"{WAIT_CAP_SECONDS} seconds: past that the command keeps running, the answer says pollRequired and "
                "processGet tells how it ends. For a server or any long job, do not wait: give it a name, use "
                "waitForPorts if it listens, and read its output later with processGetLogs.",
                obj(
                    {
                        "command": s("The command line, run by the shell (pipes, redirections and && work)"),
                        "name": s(
                            "A name to address the process by later, instead of its pid (one is generated if absent)"
                        ),
                        "workingDir": s("The directory to run the command in (default /)"),
                        "env": {
                            **STRING_MAP,
                            "description": "Environment variables to set for the command, on top of the sandbox's",
                        },
                        "waitForCompletion": s(
                            "Answer only once the command has ended (or after the wait limit), with its exit code "
                            "and output",
                            "boolean",
                        ),
                        "timeout": s(
                            "How many seconds to wait for completion or for the ports (default 30; 0: no limit). "
                            "A timeout ends the wait, not the command, unless keepAlive is set",
                            ["null", "integer"],
                        ),
                        "waitForPorts": {
                            "type": "array",
                            "items": {"type": "integer"},
                            "description": "TCP ports the command will listen on: answer once they all accept "
                            "connections (within timeout)",
                        },
                        "restartOnFailure": s("Start the command again each time it exits with a failure", "boolean"),
                        "maxRestarts": s(
                            "With restartOnFailure: how many restarts at most (default 0; negative: no limit)",
                            "integer",
                        ),
                        "keepAlive": s(
                            "Keep the sandbox from going to sleep while the command runs (for servers and long "
                            "jobs). The command is then stopped when its timeout passes (default 600 seconds; "
                            "0: never)",
                            "boolean",
                        ),
                    },
                    ("command",),
                ),
                obj(
                    {
                        "pid": s("Identifier of the process, for the other process tools"),
                        "name": s("Name of the process"),
                        "status": PROCESS_STATUS,
                        "exitCode": s("Exit code (meaningful once the status is not running)", "integer"),
                        "logs": s("Its output so far: stdout then stderr (when waited for)"),
                        "message": s("What to do next when the wait limit was reached"),
                        "pollRequired": s(
                            "true when the command still runs after the wait limit: poll processGet", "boolean"
                        ),
                    },
                    ("pid", "name", "status", "exitCode"),
                ),
                self.process_execute,
            ),
            Tool(
                "processGet",
                "Show one process (by name or pid): status, exit code, times and recent output. Poll it to follow "
                "a command that processExecute left running.",
                IDENTIFIER,
                PROCESS,
                self.process_get,
            ),
            Tool(
                "processGetLogs",
                "Get the output of a process (by name or pid), running or ended: stdout followed by stderr.",
                IDENTIFIER,
                obj({"logs": s("Its output: stdout then stderr")}, ("logs",)),
                self.process_logs,
            ),
            Tool(
                "processStop",
                "Ask a running process (by name or pid) to end: its whole process tree gets SIGTERM. Use processKill "
                "if it does not end.",
                IDENTIFIER,
                NEW_STATUS,
                self.process_stop,
            ),
            Tool(
                "processKill",
                "End a running process (by name or pid) at once: its whole process tree gets SIGKILL.",
                IDENTIFIER,
                NEW_STATUS,
                self.process_kill,
            ),
            # --- filesystem --------------------------------------------------------------------------
            Tool(
                "fsGetWorkingDirectory",
                "Tell the working directory: the directory that relative paths given to the other tools start from.",
                obj({}),
                obj({"path": s("Absolute path of the working directory")}, ("path",)),
                self.fs_working_directory,
            ),
            Tool(
                "fsListDirectory",
                "List what a directory holds: its files (with size, mode, owner and time) and its subdirectories. "
                "Not recursive.",
                obj({"path": s("The directory: absolute, or relative to the working directory")}, ("path",)),
                obj({"directory": DIRECTORY}, ("directory",)),
                self.fs_list,
            ),
            Tool(
                "fsReadFile",
                "Read a whole text file, with its metadata. For part of a long file, codegenReadFileRange is lighter.",
                obj({"path": s("The file: absolute, or relative to the working directory")}, ("path",)),
                obj(
                    {**FILE["properties"], "name": s("The path again, as given"), "content": s("The file's text")},
                    (*FILE["required"], "content"),
                ),
                self.fs_read,
            ),
            Tool(
                "fsWriteFile",
                "Create a file, or replace all of an existing file's content, creating missing parent directories; "
                "with isDirectory, create a directory instead. To change part of a file that exists, fsEditFile "
                "is better: it sends only the changed text and cannot drop the rest by mistake.",
                obj(
                    {
                        "path": s("The file or directory to create: absolute, or relative to the working directory"),
                        "content": s("The complete new content of the file (default: empty)"),
                        "permissions": s("Mode bits in octal, e.g. 0755 (default 0644; an invalid value is ignored)"),
                        "isDirectory": s("Create a directory at path instead of a file", "boolean"),
                    },
                    ("path",),
                ),
                MESSAGE,
                self.fs_write,
            ),
            Tool(
                "fsEditFile",
                "Change part of an existing file by replacing an exact piece of its text; the preferred way to modify "
                "a file that exists, rather than rewriting it with fsWriteFile. oldString must occur exactly once "
                "(quote a few surrounding lines, whitespace included, to make it unique) unless replaceAll is set. "
                "If it is not found, the file differs from what you think: read it again and retry with its "
                "current text. The file keeps its mode.",
                obj(
                    {
                        "path": s("The file to change: absolute, or relative to the working directory"),
                        "oldString": s(
                            "The exact text to replace, whitespace and indentation included; not empty. It must "
                            "occur once in the file, unless replaceAll is set"
                        ),
                        "newString": s("The text to put in its place; must differ from oldString; empty deletes it"),
                        "replaceAll": s(
                            "Replace all the places oldString occurs, not just one (default false)", "boolean"
                        ),
                    },
                    ("path", "oldString", "newString"),
                ),
                obj(
                    {
                        "path": s("The file that was changed"),
                        "occurrencesReplaced": s("How many occurrences were replaced", "integer"),
                    },
                    ("path", "occurrencesReplaced"),
                ),
                self.fs_edit,
            ),
            Tool(
                "fsDeleteFileOrDirectory",
                "Delete a file, or a directory. A directory that is not empty is deleted only with recursive.",
                obj(
                    {
                        "path": s("What to delete: absolute, or relative to the working directory"),
                        "isDirectory": s("Set it if path is a directory (detected when absent)", "boolean"),
                        "recursive": s("Delete a directory together with everything in it (default false)", "boolean"),
                    },
                    ("path",),
                ),
                MESSAGE,
                self.fs_delete,
            ),
            # --- codegen helpers -----------------------------------------------------------------------
            Tool(
                "codegenFileSearch",
                "Find files when you know part of their name but not where they are: the letters of query must "
                "appear in order in a file's name (case ignored). Gives at most 10 absolute paths.",
                obj(
                    {
                        "query": s("Letters of the file name to look for, in order, e.g. usrctl for user_controller"),
                        "directory": s(
                            "Where to look, relative to the working directory (default: the working directory); "
                            "must stay inside it"
                        ),
                    },
                    ("query",),
                ),
                obj(
                    {
                        "success": SUCCESS,
                        "matches": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "Absolute paths of the files found (at most 10)",
                        },
                        "query": s("The query, repeated"),
                    },
                    ("success", "matches", "query"),
                ),
                self.codegen_file_search,
            ),
            Tool(
                "codegenCodebaseSearch",
                "Semantic search for code related to a question. Not implemented here: it always finds nothing; use "
                "codegenGrepSearch or codegenFileSearch instead.",
                obj(
                    {
                        "query": s("What the code you look for does"),
                        "targetDirectories": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "Directories to look in, as glob patterns",
                        },
                    },
                    ("query",),
                ),
                obj(
                    {
                        "success": SUCCESS,
                        "results": {"type": "array", "items": {}, "description": "Always empty"},
                        "query": s("The query, repeated"),
                    },
                    ("success", "results", "query"),
                ),
                self.codegen_codebase_search,
            ),
            Tool(
                "codegenGrepSearch",
                "Search the text of the files under the working directory with a regular expression (ripgrep): the "
                "way to find exact names, strings or patterns. The answer is ripgrep's JSON output, one JSON object "
                "per line, with paths relative to the working directory. Finding nothing, or an invalid pattern, is "
                "an error.",
                obj(
                    {
                        "query": s("The regular expression to look for (ripgrep syntax)"),
                        "caseSensitive": s("Match letter case exactly (default false: case is ignored)", "boolean"),
                        "includePattern": s("Search only files matching this glob, e.g. *.py"),
                        "excludePattern": s("Skip files matching this glob, e.g. *_test.go"),
                    },
                    ("query",),
                ),
                obj(
                    {
                        "success": SUCCESS,
                        "results": s(
                            "ripgrep's JSON lines (begin, match, end, summary), paths relative to the working directory"
                        ),
                    },
                    ("success", "results"),
                ),
                self.codegen_grep,
            ),
            Tool(
                "codegenReadFileRange",
                "Read some lines of a file, numbered from 1, both ends included. Ask for at most 250 lines per call; "
                "read a long file in several ranges.",
                obj(
                    {
                        "targetFile": s("The file: absolute, or relative to the working directory"),
                        "startLineOneIndexed": s("Number of the first line to read (1 is the first line)", "integer"),
                        "endLineOneIndexedInclusive": s(
                            "Number of the last line to read, included; at most the file's line count", "integer"
                        ),
                    },
                    ("targetFile", "startLineOneIndexed", "endLineOneIndexedInclusive"),
                ),
                obj(
                    {
                        "success": SUCCESS,
                        "content": s("The lines asked for, joined by newlines"),
                        "file": s("The file, as given"),
                    },
                    ("success", "content", "file"),
                ),
                self.codegen_read_range,
            ),
            Tool(
                "codegenReapply",
                "Meant to retry a failed codegenEditFile with a stronger model. Not implemented here: it always "
                "answers success false; make the change with fsEditFile instead.",
                obj({"targetFile": s("The file whose last edit should be applied again")}, ("targetFile",)),
                obj({"success": SUCCESS, "message": NOTE}, ("success",)),
                self.codegen_reapply,
            ),
            Tool(
                "codegenListDir",
                "List a directory of the workspace (the working directory): a quick first look before reading or "
                "searching files. Not recursive.",
                obj(
                    {
                        "relativeWorkspacePath": s(
                            'The directory, relative to the working directory ("" or "/" for the working directory '
                            "itself); it must stay inside it"
                        )
                    },
                    ("relativeWorkspacePath",),
                ),
                obj({"success": SUCCESS, "directory": DIRECTORY}, ("success",)),
                self.codegen_list_dir,
            ),
            Tool(
                "codegenParallelApply",
                "Meant to apply one kind of edit to several places at once. Not implemented here: it always answers "
                "success false; edit each place with fsEditFile instead.",
                obj(
                    {
                        "editPlan": s("What to change, and how, in every region"),
                        "editRegions": {
                            "type": "array",
                            "description": "The places to edit",
                            "items": obj(
                                {
                                    "relativeWorkspacePath": s("The file, relative to the working directory"),
                                    "startLine": s("First line of the region (from 1, included)", "integer"),
                                    "endLine": s("Last line of the region (included)", "integer"),
                                },
                                ("relativeWorkspacePath",),
                                "One file region",
                            ),
                        },
                    },
                    ("editPlan", "editRegions"),
                ),
                obj({"success": SUCCESS, "message": NOTE}, ("success",)),
                self.codegen_parallel_apply,
            ),
        ] + self._optional_tools()

    def _optional_tools(self) -> list[Tool]:
        """The provider tools when a key is set, and the persistent shell (`bash`, from its own package)."""
        tools = self._provider_tools() if self.codegen_enabled else []
        if self.sessions is not None:
            from ..sessions.mcp import session_tools  # here: that module builds on this one

            tools += session_tools(self.sessions)
        return tools

    def _provider_tools(self) -> list[Tool]:
        """The two tools that need a Relace or Morph key."""
        return [
            Tool(
                "codegenEditFile",
                "Edit a file, or create it, by writing only the lines that change: every unchanged stretch is "
                "replaced by a comment such as `// ... existing code ...` (in the file's language), and a fast model "
                "(Relace or Morph) merges the sketch into the file. Keep the sketch short but give enough untouched "
                "lines around each change to place it.",
                obj(
                    {
                        "targetFile": s("The file to edit, relative to the working directory; created if missing"),
                        "instructions": s(
                            "One sentence, in the first person, saying what the edit does; it helps the merging "
                            "model settle anything ambiguous in the sketch"
                        ),
                        "codeEdit": s(
                            "The changed lines only, with a comment standing for each unchanged stretch; never "
                            "rewrite code that does not change"
                        ),
                    },
                    ("targetFile", "instructions", "codeEdit"),
                ),
                obj(
                    {
                        "success": SUCCESS,
                        "message": NOTE,
                        "filePath": s("The file, as given"),
                        "changesApplied": s("The sketch that was merged into the file"),
                    },
                    ("success",),
                ),
                self.codegen_edit_file,
            ),
            Tool(
                "codegenRerank",
                "Find the files of a directory most relevant to a question in plain words, scored by a model "
                "(Relace or Morph), best first: a good first step to narrow down where to look in a large "
                "codebase. Hidden files and dependency or build directories are skipped.",
                obj(
                    {
                        "path": s("The directory to look in: absolute, or relative to the working directory"),
                        "query": s("What you look for, in plain words"),
                        "scoreThreshold": s("Leave out files scoring below this, from 0 to 1 (default 0.5)", "number"),
                        "tokenLimit": s("Token budget of the files returned (default 30000)", "integer"),
                        "filePattern": s(
                            r"Regular expression a file's path or name must match, e.g. \.py$ keeps Python files only"
                        ),
                    },
                    ("path", "query"),
                ),
                obj(
                    {
                        "success": SUCCESS,
                        "message": NOTE,
                        "files": {
                            "type": "array",
                            "description": "The relevant files, best first",
                            "items": obj(
                                {
                                    "path": s("The file's path"),
                                    "content": s("Its text"),
                                    "score": s("Relevance, from 0 to 1", "number"),
                                },
                                ("path", "content", "score"),
                            ),
                        },
                    },
                    ("success", "files"),
                ),
                self.codegen_rerank,
            ),
        ]

    # --- processes ------------------------------------------------------------------------------

    def _view(self, proc: Any) -> dict[str, Any]:
        return process_view(proc, self.settings.max_inline_log_bytes)  # completedAt "" while running, as the original

    async def processes_list(self) -> dict[str, Any]:
        return {"processes": [self._view(p) for p in self.supervisor.list()]}

    async def process_execute(
        self,
        command: str,
        name: str = "",
        workingDir: str = "/",
        env: dict[str, str] | None = None,
        waitForCompletion: bool = False,
        timeout: int | None = None,
        waitForPorts: list[int] | None = None,
        restartOnFailure: bool = False,
        maxRestarts: int = 0,
        keepAlive: bool = False,
    ) -> dict[str, Any]:
        if timeout is None and not keepAlive:
            timeout = DEFAULT_TIMEOUT
        spec = ProcessSpec(
            command=command,
            name=name,
            working_dir=workingDir,
            env=env or {},
            restart_on_failure=restartOnFailure,
            max_restarts=maxRestarts,
            keep_alive=keepAlive,
            timeout=timeout,
            unique_name=False,
        )
        proc = await self.supervisor.start(spec)
        limit = proc.record.timeout if timeout is None else timeout
        started = time.monotonic()
        if waitForPorts:
            await self.supervisor.wait_ports(proc, waitForPorts, float(limit) if limit else None)
        result: dict[str, Any] = {"pid": proc.record.pid, "name": proc.record.name}
        if waitForCompletion:
            remaining = None if not limit else max(0.0, limit - (time.monotonic() - started))
            capped = remaining is None or remaining > WAIT_CAP_SECONDS
            if not await proc.wait_final(WAIT_CAP_SECONDS if capped else remaining):
                if not capped:
                    raise ApiError(wait_timeout_message(proc, limit))
                result.update(
                    pollRequired=True,
                    message=f"Process is still running after {WAIT_CAP_SECONDS} seconds. Poll processGet with this "
                    "pid or name until the status is completed, failed, killed or stopped.",
                )
            logs = logs_view(proc, self.settings)["logs"]
            if logs:
                result["logs"] = logs
        result.update(status=proc.record.status, exitCode=proc.record.exit_code)
        return result

    async def process_get(self, identifier: str) -> dict[str, Any]:
        return self._view(self.supervisor.get(identifier, f"failed to get process: process not found: {identifier}"))

    async def process_logs(self, identifier: str) -> dict[str, Any]:
        proc = self.supervisor.get(identifier, f"process with PID {identifier} not found")
        return {"logs": logs_view(proc, self.settings)["logs"]}

    async def process_stop(self, identifier: str) -> dict[str, Any]:
        self.supervisor.stop(identifier)
        return {"status": "stopped"}

    async def process_kill(self, identifier: str) -> dict[str, Any]:
        await self.supervisor.kill(identifier)
        return {"status": "killed"}

    # --- filesystem -----------------------------------------------------------------------------

    async def fs_working_directory(self) -> dict[str, Any]:
        return {"path": self.settings.workdir}

    async def fs_list(self, path: str) -> dict[str, Any]:
        return {"directory": await self.files.list_directory(self._path(path))}

    async def fs_read(self, path: str) -> dict[str, Any]:
        resolved = self._path(path)
        data = await self.files.read_text(resolved)
        data["name"] = resolved.display  # the original repeats the path here
        data["lastModified"] = without_fraction(data["lastModified"])  # as the original's MCP tool
        return data

    async def fs_write(
        self, path: str, content: str = "", permissions: str = "", isDirectory: bool = False
    ) -> dict[str, Any]:
        resolved = self._path(path)
        try:
            mode = parse_permissions(permissions, 0o644)
        except Invalid:
            mode = 0o644  # the original ignores a bad mode here
        if isDirectory:
            await self.files.make_directory(resolved, mode)
            return {"path": resolved.display, "message": "Directory created successfully"}
        await self.files.write_bytes(resolved, content.encode("utf-8", "replace"), mode)
        return {"path": resolved.display, "message": "File created/updated successfully"}

    async def fs_edit(self, path: str, oldString: str, newString: str, replaceAll: bool = False) -> dict[str, Any]:
        resolved = self._path(path)
        count = await self.files.edit(resolved, oldString, newString, replaceAll)
        return {"path": resolved.display, "occurrencesReplaced": count}

    async def fs_delete(self, path: str, isDirectory: bool | None = None, recursive: bool = False) -> dict[str, Any]:
        resolved = self._path(path)
        kind = await self.files.delete(resolved, recursive)
        message = "Directory deleted successfully" if kind == "directory" else "File deleted successfully"
        return {"path": resolved.display, "message": message}

    # --- codegen helpers --------------------------------------------------------------------------

    def _inside_workdir(self, value: str) -> str:
        """A workspace path: relative to the working directory, where a leading "/" means the working
        directory itself (an absolute path already inside it is taken as is); it must stay inside."""
        root = os.path.realpath(self.settings.workdir)
        inside = value == root or value.startswith(root.rstrip("/") + "/")
        target = os.path.realpath(value if inside else os.path.join(root, value.lstrip("/") or "."))
        if target != root and not target.startswith(root.rstrip("/") + "/"):
            raise ApiError(f"directory {json.dumps(value, ensure_ascii=False)} is outside the working directory")
        return target

    async def codegen_file_search(self, query: str, directory: str = "") -> dict[str, Any]:
        root = self._inside_workdir(directory)
        found = await fuzzy.search(root, query, exclude_dirs=frozenset(), exclude_hidden=True, limit=10)
        matches = [os.path.join(root, m["path"]) for m in found["matches"] if m["type"] == "file"]
        return {"success": True, "matches": matches, "query": query}

    async def codegen_codebase_search(self, query: str, targetDirectories: list[str] | None = None) -> dict[str, Any]:
        return {"success": True, "results": [], "query": query}

    async def codegen_grep(
        self, query: str, caseSensitive: bool = False, includePattern: str = "", excludePattern: str = ""
    ) -> dict[str, Any]:
        try:
            lines = await self.content.raw_json(
                self.settings.workdir,
                query,
                case_sensitive=caseSensitive,
                include=includePattern,
                exclude=excludePattern,
            )
        except Invalid as e:  # an invalid pattern: rg's own explanation
            raise ApiError(f"grep search failed: {e.message.removeprefix('grep failed: ')}") from None
        lines = [_relative_rg_line(line) for line in lines]
        if not any(line.startswith('{"type":"match"') for line in lines):
            # as the original, where rg's exit status 1 (nothing found) is an error
            raise ApiError(f"grep search failed: no match for {json.dumps(query, ensure_ascii=False)}")
        return {"success": True, "results": "".join(line + "\n" for line in lines)}

    async def codegen_read_range(
        self, targetFile: str, startLineOneIndexed: int, endLineOneIndexedInclusive: int
    ) -> dict[str, Any]:
        resolved = self._path(targetFile)
        start, end = startLineOneIndexed, endLineOneIndexedInclusive
        content = await self.files.read_lines(resolved, start, end) if 1 <= start <= end else None
        if content is None:
            raise ApiError("invalid line range")
        return {"success": True, "content": content, "file": resolved.display}

    async def codegen_reapply(self, targetFile: str) -> dict[str, Any]:
        return {"success": False, "message": "Reapply functionality not yet implemented"}

    async def codegen_list_dir(self, relativeWorkspacePath: str) -> dict[str, Any]:
        target = self._inside_workdir(relativeWorkspacePath)
        return {
            "success": True,
            "directory": await self.files.list_directory(paths.from_value(target, self.settings.workdir)),
        }

    async def codegen_edit_file(self, targetFile: str, instructions: str, codeEdit: str) -> dict[str, Any]:
        result = await self.codegen.fastapply(self._path(targetFile), codeEdit, None)
        # changesApplied is the sketch that was merged, as the original answers
        return {"success": True, "message": result["message"], "filePath": result["path"], "changesApplied": codeEdit}

    async def codegen_rerank(
        self, path: str, query: str, scoreThreshold: float = 0, tokenLimit: int = 0, filePattern: str | None = None
    ) -> dict[str, Any]:
        return await self.codegen.rerank(self._path(path), query, scoreThreshold, tokenLimit, filePattern)

    async def codegen_parallel_apply(self, editPlan: str, editRegions: list[dict[str, Any]]) -> dict[str, Any]:
        return {"success": False, "message": "Parallel apply functionality not yet implemented"}


def _relative_rg_line(line: str) -> str:
    """An rg JSON line with its path relative to the search root: "./src/a.py" -> "src/a.py" (rg
    was given "." to search, the original let it default to the current directory)."""
    if '"path":{"text":"./' not in line:
        return line
    event = json.loads(line)
    path = event.get("data", {}).get("path")
    if isinstance(path, dict) and isinstance(path.get("text"), str) and path["text"].startswith("./"):
        path["text"] = path["text"][2:]
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


async def call(tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    """Run a tool; our typed errors and OS errors come back as plain messages."""
    try:
        return await tool.handler(**arguments)
    except ApiError as e:
        raise ToolFailure(e.message) from None
    except TimeoutError as e:
        raise ToolFailure(str(e) or "timed out") from None
    except OSError as e:  # "/x: no such file or directory", not Python's "[Errno 2] ...: '/x'"
        raise ToolFailure(os_error_text(e)) from None


class ToolFailure(Exception):
    """A tool ran and failed: reported as an isError result, not a protocol error."""
