"""The MCP tools: one per service call, with the original's names, schemas and shapes.

Each handler calls the same service as the matching HTTP route (the supervisor, the
filesystem service, search); nothing here re-implements a behaviour. `transport.py`
speaks the protocol (JSON-RPC over streamable HTTP) and calls them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..codegen.service import Codegen
from ..config import Settings
from ..errors import ApiError, Invalid
from ..filesystem.files import Files, parse_permissions
from ..http import paths
from ..process.supervisor import ProcessSpec, Supervisor
from ..process.views import logs_view, process_view
from ..search import fuzzy
from ..search.content import ContentSearch

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


def obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A closed object schema (additionalProperties: false), as go-sdk generates."""
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


def s(description: str, kind: str | list[str] = "string", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "description": description, **extra}


STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
NULLABLE_STRING = ["null", "string"]
PROCESS_STATUS = {"type": "string", "enum": ["running", "completed", "failed", "killed", "stopped"]}
PROCESS = obj(
    {
        "pid": s("OS process id of the command", "string"),
        "name": s("Process name"),
        "command": s("The command line"),
        "status": PROCESS_STATUS,
        "startedAt": s("Start time"),
        "completedAt": s("Completion time", NULLABLE_STRING),
        "exitCode": s("Exit code (-1 when ended by a signal)", "integer"),
        "workingDir": s("Working directory"),
        "logs": s("stdout then stderr", NULLABLE_STRING),
        "stdout": s("Standard output", NULLABLE_STRING),
        "stderr": s("Standard error", NULLABLE_STRING),
        "restartOnFailure": s("Restarted when it fails", "boolean"),
        "maxRestarts": s("Restart limit (negative: unlimited)", "integer"),
        "restartCount": s("Restarts so far", "integer"),
        "keepAlive": s("Keeps the sandbox awake while running", "boolean"),
        "stdin": s("Has a stdin pipe (POST /process/{id}/stdin)", "boolean"),
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
        "path": s("Path"),
        "name": s("Name"),
        "permissions": s("Mode, in octal"),
        "size": s("Size in bytes", "integer"),
        "lastModified": s("Modification time (RFC 3339)"),
        "owner": s("Owner"),
        "group": s("Group"),
    },
    ("path", "name", "permissions", "size", "lastModified", "owner", "group"),
)
DIRECTORY = obj(
    {
        "path": s("Path"),
        "name": s("Name"),
        "files": {"type": "array", "items": FILE},
        "subdirectories": {"type": "array", "items": obj({"path": s("Path"), "name": s("Name")}, ("path", "name"))},
    },
    ("path", "name", "files", "subdirectories"),
)
MESSAGE = obj({"path": s("Path"), "message": s("What was done")}, ("path", "message"))


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
    ) -> None:
        self.settings = settings
        self.supervisor = supervisor
        self.files = files
        self.content = content
        self.codegen = codegen
        self.codegen_enabled = codegen_enabled  # decided at start-up, as the original registers them

    def _path(self, value: str) -> paths.ResolvedPath:
        # MCP paths go straight to the filesystem: relative to WORKDIR, no `~`, no %2F rule.
        return paths.from_value(value, self.settings.workdir)

    def all(self) -> list[Tool]:
        return [
            # --- processes -------------------------------------------------------------------------
            Tool(
                "processesList",
                "List every process started in the sandbox, running or finished.",
                obj({}),
                obj({"processes": {"type": "array", "items": PROCESS}}, ("processes",)),
                self.processes_list,
            ),
            Tool(
                "processExecute",
                "Execute a command through the shell. With waitForCompletion the call returns when the command "
                f"ends (at most {WAIT_CAP_SECONDS} s: then pollRequired is set and processGet gives the outcome). "
                "timeout (seconds, default 30, 0 = none) bounds the wait; it kills the command only with keepAlive.",
                obj(
                    {
                        "command": s("The command to execute"),
                        "name": s("A name to find the process by"),
                        "workingDir": s("Working directory (default /)"),
                        "env": {**STRING_MAP, "description": "Environment variables to add"},
                        "waitForCompletion": s("Wait for the command to end", "boolean"),
                        "timeout": s("Seconds to wait (default 30; 0: no limit)", ["null", "integer"]),
                        "waitForPorts": {
                            "type": "array",
                            "items": {"type": "integer"},
                            "description": "Ports to wait for",
                        },
                        "restartOnFailure": s("Restart the command when it fails", "boolean"),
                        "maxRestarts": s("Restart limit (negative: unlimited)", "integer"),
                        "keepAlive": s("Keep the sandbox awake while the command runs", "boolean"),
                    },
                    ("command",),
                ),
                obj(
                    {
                        "pid": s("Process id"),
                        "name": s("Process name"),
                        "status": PROCESS_STATUS,
                        "exitCode": s("Exit code", "integer"),
                        "logs": s("Output (stdout then stderr)"),
                        "message": s("A note for the agent"),
                        "pollRequired": s("The command still runs: poll processGet", "boolean"),
                    },
                    ("pid", "name", "status", "exitCode"),
                ),
                self.process_execute,
            ),
            Tool(
                "processGet",
                "Get a process by name or PID.",
                obj({"identifier": s("Process name or PID")}, ("identifier",)),
                PROCESS,
                self.process_get,
            ),
            Tool(
                "processGetLogs",
                "Get the output of a process by name or PID.",
                obj({"identifier": s("Process name or PID")}, ("identifier",)),
                obj({"logs": s("Output")}, ("logs",)),
                self.process_logs,
            ),
            Tool(
                "processStop",
                "Stop a process gracefully (SIGTERM to its whole tree).",
                obj({"identifier": s("Process name or PID")}, ("identifier",)),
                obj({"status": s("New status")}, ("status",)),
                self.process_stop,
            ),
            Tool(
                "processKill",
                "Kill a process and its whole tree (SIGKILL).",
                obj({"identifier": s("Process name or PID")}, ("identifier",)),
                obj({"status": s("New status")}, ("status",)),
                self.process_kill,
            ),
            # --- filesystem --------------------------------------------------------------------------
            Tool(
                "fsGetWorkingDirectory",
                "Get the working directory that relative paths start from.",
                obj({}),
                obj({"path": s("Working directory")}, ("path",)),
                self.fs_working_directory,
            ),
            Tool(
                "fsListDirectory",
                "List the files and subdirectories of a directory.",
                obj({"path": s("Directory path")}, ("path",)),
                obj({"directory": DIRECTORY}, ("directory",)),
                self.fs_list,
            ),
            Tool(
                "fsReadFile",
                "Read a text file.",
                obj({"path": s("File path")}, ("path",)),
                obj({**FILE["properties"], "content": s("Content")}, (*FILE["required"], "content")),
                self.fs_read,
            ),
            Tool(
                "fsWriteFile",
                "Write a text file (parents are created), or create a directory with isDirectory.",
                obj(
                    {
                        "path": s("Path"),
                        "content": s("Content"),
                        "permissions": s("Mode, in octal (default 0644)"),
                        "isDirectory": s("Create a directory", "boolean"),
                    },
                    ("path",),
                ),
                MESSAGE,
                self.fs_write,
            ),
            Tool(
                "fsEditFile",
                "Replace oldString by newString in a file: it must occur exactly once, unless replaceAll.",
                obj(
                    {
                        "path": s("File path"),
                        "oldString": s("Text to replace"),
                        "newString": s("Replacement"),
                        "replaceAll": s("Replace every occurrence", "boolean"),
                    },
                    ("path", "oldString", "newString"),
                ),
                obj(
                    {"path": s("Path"), "occurrencesReplaced": s("How many were replaced", "integer")},
                    ("path", "occurrencesReplaced"),
                ),
                self.fs_edit,
            ),
            Tool(
                "fsDeleteFileOrDirectory",
                "Delete a file or a directory (recursive for a directory that is not empty).",
                obj(
                    {
                        "path": s("Path"),
                        "isDirectory": s("Expect a directory", "boolean"),
                        "recursive": s("Delete a directory with its content", "boolean"),
                    },
                    ("path",),
                ),
                MESSAGE,
                self.fs_delete,
            ),
            # --- codegen helpers -----------------------------------------------------------------------
            Tool(
                "codegenFileSearch",
                "Find files by fuzzy match on their names (at most 10).",
                obj(
                    {"query": s("Fuzzy name"), "directory": s("Directory, relative to the working directory")},
                    ("query",),
                ),
                obj(
                    {
                        "success": s("", "boolean"),
                        "matches": {"type": "array", "items": {"type": "string"}},
                        "query": s(""),
                    },
                    ("success", "matches", "query"),
                ),
                self.codegen_file_search,
            ),
            Tool(
                "codegenCodebaseSearch",
                "Semantic codebase search (not available: always empty).",
                obj(
                    {"query": s("Query"), "targetDirectories": {"type": "array", "items": {"type": "string"}}},
                    ("query",),
                ),
                obj(
                    {"success": s("", "boolean"), "results": {"type": "array", "items": {}}, "query": s("")},
                    ("success", "results", "query"),
                ),
                self.codegen_codebase_search,
            ),
            Tool(
                "codegenGrepSearch",
                "Search file contents with a regular expression (ripgrep JSON lines).",
                obj(
                    {
                        "query": s("Regular expression"),
                        "caseSensitive": s("", "boolean"),
                        "includePattern": s("Glob to include"),
                        "excludePattern": s("Glob to exclude"),
                    },
                    ("query",),
                ),
                obj(
                    {"success": s("", "boolean"), "results": {"type": "array", "items": {"type": "string"}}},
                    ("success", "results"),
                ),
                self.codegen_grep,
            ),
            Tool(
                "codegenReadFileRange",
                "Read lines of a file (1-based, inclusive).",
                obj(
                    {
                        "targetFile": s("File path"),
                        "startLineOneIndexed": s("First line", "integer"),
                        "endLineOneIndexedInclusive": s("Last line", "integer"),
                    },
                    ("targetFile", "startLineOneIndexed", "endLineOneIndexedInclusive"),
                ),
                obj({"success": s("", "boolean"), "content": s(""), "file": s("")}, ("success", "content", "file")),
                self.codegen_read_range,
            ),
            Tool(
                "codegenReapply",
                "Reapply the last edit (not available).",
                obj({"targetFile": s("File path")}, ("targetFile",)),
                obj({"success": s("", "boolean"), "message": s("")}, ("success", "message")),
                self.codegen_reapply,
            ),
            Tool(
                "codegenListDir",
                "List a directory, relative to the working directory.",
                obj({"relativeWorkspacePath": s("Directory")}, ("relativeWorkspacePath",)),
                obj({"success": s("", "boolean"), "directory": DIRECTORY}, ("success", "directory")),
                self.codegen_list_dir,
            ),
            Tool(
                "codegenParallelApply",
                "Apply an edit plan to several regions (not available).",
                obj(
                    {
                        "editPlan": s("Plan"),
                        "editRegions": {
                            "type": "array",
                            "items": obj(
                                {
                                    "relativeWorkspacePath": s(""),
                                    "startLine": s("", "integer"),
                                    "endLine": s("", "integer"),
                                },
                                ("relativeWorkspacePath",),
                            ),
                        },
                    },
                    ("editPlan", "editRegions"),
                ),
                obj({"success": s("", "boolean"), "message": s("")}, ("success", "message")),
                self.codegen_parallel_apply,
            ),
        ] + (self._provider_tools() if self.codegen_enabled else [])

    def _provider_tools(self) -> list[Tool]:
        """The two tools that need a Relace or Morph key."""
        return [
            Tool(
                "codegenEditFile",
                "Edit a file by giving only the changed code, with `// ... existing code ...` marking what stays; "
                "a model merges it into the file (Relace or Morph fast apply).",
                obj(
                    {
                        "targetFile": s("File to edit (created if missing)"),
                        "instructions": s("What the edit does, in one sentence"),
                        "codeEdit": s("The changed code, with markers for unchanged parts"),
                    },
                    ("targetFile", "instructions", "codeEdit"),
                ),
                obj(
                    {
                        "success": s("", "boolean"),
                        "message": s(""),
                        "filePath": s(""),
                        "changesApplied": s("", "boolean"),
                    },
                    ("success", "message", "filePath", "changesApplied"),
                ),
                self.codegen_edit_file,
            ),
            Tool(
                "codegenRerank",
                "Find the files of a directory most relevant to a query, ranked by a model (Relace or Morph).",
                obj(
                    {
                        "path": s("Directory to search"),
                        "query": s("What to look for"),
                        "scoreThreshold": s("Minimum score, 0-1 (default 0.5)", "number"),
                        "tokenLimit": s("Token budget of the returned files (default 30000)", "integer"),
                        "filePattern": s("Regular expression the path or name must match"),
                    },
                    ("path", "query"),
                ),
                obj(
                    {
                        "success": s("", "boolean"),
                        "message": s(""),
                        "files": {
                            "type": "array",
                            "items": obj(
                                {"path": s(""), "content": s(""), "score": s("", "number")},
                                ("path", "content", "score"),
                            ),
                        },
                    },
                    ("success", "message", "files"),
                ),
                self.codegen_rerank,
            ),
        ]

    # --- processes ------------------------------------------------------------------------------

    def _view(self, proc: Any) -> dict[str, Any]:
        return process_view(proc, self.settings.max_inline_log_bytes, completed_null=True)

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
                    raise ApiError(f"process timed out after {limit} seconds")
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

    def _inside_workdir(self, relative: str) -> str:
        root = os.path.realpath(self.settings.workdir)
        target = os.path.realpath(os.path.join(root, relative or "."))
        if target != root and not target.startswith(root + os.sep):
            raise ApiError(f"directory {relative} is outside the working directory")
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
        lines = await self.content.raw_json(
            self.settings.workdir, query, case_sensitive=caseSensitive, include=includePattern, exclude=excludePattern
        )
        return {"success": True, "results": lines}

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
        return {"success": True, "message": result["message"], "filePath": result["path"], "changesApplied": True}

    async def codegen_rerank(
        self, path: str, query: str, scoreThreshold: float = 0, tokenLimit: int = 0, filePattern: str | None = None
    ) -> dict[str, Any]:
        return await self.codegen.rerank(self._path(path), query, scoreThreshold, tokenLimit, filePattern)

    async def codegen_parallel_apply(self, editPlan: str, editRegions: list[dict[str, Any]]) -> dict[str, Any]:
        return {"success": False, "message": "Parallel apply functionality not yet implemented"}


async def call(tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    """Run a tool; our typed errors and OS errors come back as plain messages."""
    try:
        return await tool.handler(**arguments)
    except ApiError as e:
        raise ToolFailure(e.message) from None
    except (TimeoutError, OSError) as e:
        raise ToolFailure(str(e) or type(e).__name__) from None


class ToolFailure(Exception):
    """A tool ran and failed: reported as an isError result, not a protocol error."""
