"""The OpenAPI 3.1 document of the whole HTTP API, served at `/openapi.json`,
`/swagger/doc.json` and rendered by `/swagger/index.html`.

It is plain data, built once. The helpers below only remove repetition: each operation
reads as its tag, summary, parameters, body and responses. Two rules keep it short:

- HEAD twins (an empty 200 that checks nothing, as the original) and OPTIONS (204 with
  the CORS headers, on any path) are not listed;
- unknown routes, and known paths with a method not listed here, answer a plain-text
  `404 page not found`; every other error is `{"error": "..."}` (the `Error` schema),
  and a 500 is listed only where the contract makes it the answer.

`tests/system/test_openapi.py` checks that the paths and methods here are exactly the
routes the app serves.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from . import __version__

Schema = dict[str, Any]

# --- schema helpers --------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def string(description: str = "", **extra: Any) -> Schema:
    return _described({"type": "string", **extra}, description)


def integer(description: str = "", **extra: Any) -> Schema:
    return _described({"type": "integer", **extra}, description)


def number(description: str = "", **extra: Any) -> Schema:
    return _described({"type": "number", **extra}, description)


def boolean(description: str = "", **extra: Any) -> Schema:
    return _described({"type": "boolean", **extra}, description)


def array(items: Schema, description: str = "") -> Schema:
    return _described({"type": "array", "items": items}, description)


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), description: str = "", **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return _described(schema, description)


def _described(schema: Schema, description: str) -> Schema:
    if description:
        schema["description"] = description
    return schema


# --- parameter, body and response helpers -----------------------------------------------


def path_param(name: str, description: str, schema: Schema | None = None) -> Schema:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema or string()}


def query(name: str, schema: Schema, description: str = "", required: bool = False) -> Schema:
    param: Schema = {"name": name, "in": "query", "schema": schema, "description": description}
    if required:
        param["required"] = True
    return param


def header(name: str, description: str) -> Schema:
    return {"name": name, "in": "header", "schema": string(), "description": description}


FILE_PATH = path_param(
    "path",
    "A file path. Without a leading `/` it is relative to WORKDIR (`src/a.py`); an absolute path is spelled "
    "`/filesystem//tmp/x` (Python SDK) or `/filesystem/%2Ftmp%2Fx` (TS SDK): when the raw URL holds `%2F`, the "
    "decoded rest of the path is taken as is. `~` is $HOME.",
)
PROCESS_ID = path_param("identifier", "The process name, or its pid (all digits: looked up by pid only).")
PID = path_param("pid", "An OS process id.", integer(minimum=1))
UPLOAD_ID = path_param("uploadId", "The id `initiate` returned.")
RECURSIVE = query("recursive", boolean(), "Delete a non-empty directory and everything in it.")


def json_body(schema: Schema, required: bool = True, description: str = "") -> Schema:
    return _described({"required": required, "content": {"application/json": {"schema": schema}}}, description)


BINARY = string(format="binary")


def ok(schema: Schema, description: str = "OK", status: int = 200) -> dict[str, Schema]:
    return {str(status): {"description": description, "content": {"application/json": {"schema": schema}}}}


def content(media: dict[str, Schema], description: str = "OK", status: int = 200) -> dict[str, Schema]:
    return {str(status): {"description": description, "content": {k: {"schema": v} for k, v in media.items()}}}


def errors(cases: dict[int, str]) -> dict[str, Schema]:
    """Error responses: each is `{"error": message}` with the status's meaning."""
    return {
        str(status): {"description": description, "content": {"application/json": {"schema": ref("Error")}}}
        for status, description in cases.items()
    }


def op(
    tag: str,
    summary: str,
    responses: dict[str, Schema],
    *,
    description: str = "",
    parameters: tuple[Schema, ...] = (),
    body: Schema | None = None,
    public: bool = False,
) -> Schema:
    operation: Schema = {"tags": [tag], "summary": summary}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = list(parameters)
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = {**responses, **({} if public else UNAUTHORIZED)}
    if public:
        operation["security"] = []
    return operation


UNAUTHORIZED = {"401": {"$ref": "#/components/responses/Unauthorized"}}
BAD_BODY = "Invalid JSON body or field (`invalid request body: ...`)."

# --- schemas ---------------------------------------------------------------------------

SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        {
            "error": string("What went wrong; OS errors read `<op> <path>: <errno text>`."),
            "code": string("A machine-readable reason, where there is one (`FILE_ALREADY_EXISTS`)."),
        },
        required=("error",),
    ),
    "SuccessResponse": obj({"path": string(), "message": string()}, required=("message",)),
    "MessageResponse": obj({"message": string()}, required=("message",)),
    "Welcome": obj({"message": string(), "documentation": string(), "description": string()}, required=("message",)),
    # --- system
    "UpgradeStatus": obj(
        {
            "status": string(enum=["idle", "running", "completed", "failed"]),
            "step": string("none, starting, download, validate, replace, completed or skipped."),
            "version": string(),
            "lastAttempt": string(format="date-time"),
            "error": string(),
            "downloadUrl": string(),
            "binaryPath": string(),
            "bytesDownloaded": integer(),
        },
        required=("status", "step", "version"),
    ),
    "HealthResponse": obj(
        {
            "status": string(enum=["ok"]),
            "version": string(),
            "gitCommit": string(),
            "buildTime": string(),
            "goVersion": string("The runtime (here a Python version); the name is the original's."),
            "os": string(),
            "arch": string(),
            "uptime": string("Go duration format: `3m5s`."),
            "uptimeSeconds": number(),
            "upgradeCount": integer(),
            "startedAt": string(format="date-time"),
            "lastUpgrade": ref("UpgradeStatus"),
        },
        required=(
            "status",
            "version",
            "gitCommit",
            "buildTime",
            "goVersion",
            "os",
            "arch",
            "uptime",
            "uptimeSeconds",
            "upgradeCount",
            "startedAt",
            "lastUpgrade",
        ),
    ),
    "UpgradeRequest": obj(
        {
            "version": string("`latest` (default), `develop`, `main` or `vX.Y.Z`."),
            "baseUrl": string("Release download base (default: the GitHub releases)."),
            "path": string("A local binary to upgrade to instead of downloading one."),
        }
    ),
    "UpgradeResponse": obj(
        {"message": string(), "version": string(), "baseUrl": string(), "path": string()},
        required=("message", "version", "baseUrl"),
    ),
    "EnvironmentReloadResponse": obj(
        {
            "generation": integer(),
            "applied": integer("Variables set."),
            "removed": integer("Variables an earlier reload set that this document lacks."),
        },
        required=("generation", "applied", "removed"),
    ),
    # --- process
    "ProcessRequest": obj(
        {
            "command": string("Run as `[$SHELL or sh, *($SHELL_ARGS or -c), command]`.", minLength=1),
            "name": string("Default: `proc-` and 8 random characters."),
            "workingDir": string("Default: the daemon's working directory."),
            "env": obj({}, additionalProperties=string(), description="Added to the daemon's environment."),
            "waitForCompletion": boolean("Answer once the process is over (after every restart)."),
            "timeout": integer(
                "Seconds the request waits (0: no limit; 422 when it runs out, the process keeps running). "
                "For keepAlive processes it also kills the tree (default 600).",
                minimum=0,
            ),
            "waitForPorts": array(integer(minimum=1, maximum=65535), "Answer once these ports are served."),
            "restartOnFailure": boolean(),
            "maxRestarts": integer("Negative: unlimited."),
            "keepAlive": boolean("Hold scale-to-zero off while the process runs."),
            "stdin": boolean("Keep a stdin pipe open (`POST /process/{identifier}/stdin`)."),
        },
        required=("command",),
    ),
    "ProcessResponse": obj(
        {
            "pid": string("The OS pid of the first spawn, stable across restarts."),
            "name": string(),
            "command": string(),
            "status": string(enum=["running", "completed", "failed", "stopped", "killed"]),
            "startedAt": string("RFC 1123: `Mon, 02 Jan 2006 15:04:05 GMT`."),
            "completedAt": nullable(string('`""` while running (`null` in the list).')),
            "exitCode": integer(),
            "workingDir": string(),
            "logs": nullable(string("stdout then stderr; `null` on a start without output yet.")),
            "stdout": string(),
            "stderr": string(),
            "restartOnFailure": boolean(),
            "maxRestarts": integer(),
            "restartCount": integer(),
            "keepAlive": boolean(),
            "stdin": boolean(),
        },
        required=(
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
    ),
    "ProcessLogs": obj(
        {"stdout": string(), "stderr": string(), "logs": string()}, required=("stdout", "stderr", "logs")
    ),
    "ProcessEvent": obj(
        {
            "type": string(enum=["stdout", "stderr", "keepalive", "result", "error"]),
            "data": string("Complete lines joined by `\\n`; for `result`, the ProcessResponse as JSON text."),
        },
        required=("type",),
        description="One line of the NDJSON stream of `POST /process` with `Accept: text/event-stream`.",
    ),
    "StdinResponse": obj({"path": string(), "message": string(), "bytes": integer()}, required=("message", "bytes")),
    # --- filesystem
    "File": obj(
        {
            "path": string(),
            "name": string(),
            "permissions": string("Go's FileMode in octal (`644`, `20000000755` for a directory)."),
            "size": integer(),
            "lastModified": string(format="date-time"),
            "owner": string(),
            "group": string(),
        },
        required=("path", "name", "permissions", "size", "lastModified", "owner", "group"),
    ),
    "FileWithContent": {
        "allOf": [ref("File"), obj({"content": string("UTF-8; invalid bytes become U+FFFD.")}, required=("content",))]
    },
    "TreeFile": {"allOf": [ref("File"), obj({"content": string("With `content=true`, for regular files.")})]},
    "Subdirectory": obj({"path": string(), "name": string()}, required=("path", "name")),
    "Directory": obj(
        {
            "path": string(),
            "name": string(),
            "files": array(ref("TreeFile")),
            "subdirectories": array(ref("Subdirectory")),
            "recursive": boolean("Present (true) on a recursive tree: every level, full paths."),
        },
        required=("path", "name", "files", "subdirectories"),
    ),
    "FileRequest": obj(
        {
            "content": string("The file's text (UTF-8)."),
            "isDirectory": boolean("Create a directory (and its parents) instead."),
            "permissions": string("Octal mode for a new file or directory (`0644`).", pattern="^[0-7]+$"),
        }
    ),
    "FileUpload": obj(
        {"file": BINARY, "permissions": string("Octal mode (`0644`).", pattern="^[0-7]+$")},
        required=("file",),
    ),
    "TreeRequest": obj({"files": obj({}, additionalProperties=string(), description="Relative path -> content.")}),
    "CopyRequest": obj(
        {
            "source": string(minLength=1),
            "destination": string("An existing directory receives the source inside it (`cp -r`).", minLength=1),
            "noOverwrite": boolean("409 `FILE_ALREADY_EXISTS` rather than replace anything."),
        },
        required=("source", "destination"),
    ),
    "CopyResponse": obj(
        {"message": string(), "source": string(), "destination": string("The final target.")},
        required=("message", "source", "destination"),
    ),
    "MultipartInitiateRequest": obj({"permissions": string("Octal mode of the final file.", pattern="^[0-7]+$")}),
    "MultipartInitiateResponse": obj({"uploadId": string(), "path": string()}, required=("uploadId", "path")),
    "UploadedPart": obj(
        {"partNumber": integer(), "etag": string("MD5 of the part, hex."), "size": integer(), "uploadedAt": string()},
        required=("partNumber", "etag", "size"),
    ),
    "MultipartPartResponse": obj(
        {"partNumber": integer(), "etag": string(), "size": integer()}, required=("partNumber", "etag", "size")
    ),
    "PartUpload": obj({"file": BINARY}, required=("file",)),
    "MultipartCompleteRequest": obj(
        {
            "parts": array(
                obj(
                    {"partNumber": integer(minimum=1, maximum=10000), "etag": string()}, required=("partNumber", "etag")
                ),
                "The parts to assemble, in any order; each etag must match.",
            )
        },
        required=("parts",),
    ),
    "MultipartListPartsResponse": obj(
        {"uploadId": string(), "parts": array(ref("UploadedPart"))}, required=("uploadId", "parts")
    ),
    "MultipartUpload": obj(
        {
            "uploadId": string(),
            "path": string(),
            "permissions": integer(),
            "initiatedAt": string(),
            "parts": obj({}, additionalProperties=ref("UploadedPart"), description="Part number -> part."),
        },
        required=("uploadId", "path", "parts"),
    ),
    "MultipartListUploadsResponse": obj({"uploads": array(ref("MultipartUpload"))}, required=("uploads",)),
    # --- search and watch
    "FindMatch": obj({"path": string(), "type": string(enum=["file", "directory"])}, required=("path", "type")),
    "FindResponse": obj({"matches": array(ref("FindMatch")), "total": integer()}, required=("matches", "total")),
    "FuzzySearchMatch": obj(
        {"path": string(), "score": integer(), "type": string(enum=["file", "directory"])},
        required=("path", "score", "type"),
    ),
    "FuzzySearchResponse": obj(
        {"matches": array(ref("FuzzySearchMatch")), "total": integer()}, required=("matches", "total")
    ),
    "ContentSearchMatch": obj(
        {
            "path": string(),
            "line": integer(),
            "column": integer(),
            "text": string(),
            "context": string("The lines around the match, with `contextLines`."),
        },
        required=("path", "line", "column", "text"),
    ),
    "ContentSearchResponse": obj(
        {
            "query": string(),
            "matches": array(ref("ContentSearchMatch")),
            "total": integer(),
            "timedOut": boolean("The search was stopped by its time limit; the matches are partial."),
        },
        required=("query", "matches", "total"),
    ),
    "WatchEvent": obj(
        {
            "op": string(enum=["CREATE", "WRITE", "REMOVE"]),
            "name": string(),
            "path": string("The directory holding `name`."),
            "error": {"type": "null"},
        },
        required=("op", "name", "path", "error"),
        description="One line of the watch stream (lines that are not JSON are `[keepalive]`).",
    ),
    # --- network
    "Port": obj(
        {
            "pid": integer(),
            "protocol": string(),
            "localAddr": string(),
            "localPort": integer(),
            "remoteAddr": string(),
            "remotePort": integer(),
            "state": string("ss names: LISTEN, ESTAB, UNCONN..."),
            "processName": string(),
        }
    ),
    "PortsResponse": obj({"pid": integer(), "ports": array(ref("Port"))}, required=("pid", "ports")),
    "PortMonitorRequest": obj(
        {"callback": string('`POST callback {"pid", "port"}` for each new local port of the tree.')}
    ),
    "TunnelConfigRequest": obj(
        {
            "config": string(
                "Base64 of a JSON object: local_ip (CIDR), peer_endpoint (host:port), peer_public_key, private_key, "
                "and optionally mtu, listen_port, interface_name, allowed_ips, persistent_keepalive, route_all.",
                minLength=1,
            )
        },
        required=("config",),
    ),
    # --- codegen
    "ApplyEditRequest": obj(
        {"codeEdit": string("The edit snippet, with `// ... existing code ...` markers."), "model": string()},
        required=("codeEdit",),
    ),
    "ApplyEditResponse": obj(
        {
            "success": boolean(),
            "path": string(),
            "originalContent": string(),
            "updatedContent": string(),
            "provider": string(),
            "message": string(),
        },
        required=("success", "path", "message"),
    ),
    "RankedFile": obj({"path": string(), "content": string(), "score": number()}),
    "RerankingResponse": obj(
        {"success": boolean(), "files": array(ref("RankedFile")), "message": string()}, required=("success", "files")
    ),
    # --- drives
    "DriveMountRequest": obj(
        {
            "driveName": string(minLength=1),
            "mountPath": string("Absolute.", minLength=1),
            "drivePath": string("Inside the drive (default `/`)."),
            "readOnly": boolean(),
            "uidMap": string(),
            "gidMap": string(),
        },
        required=("driveName", "mountPath"),
    ),
    "DriveMountInfo": obj(
        {
            "driveName": string(),
            "mountPath": string(),
            "drivePath": string(),
            "readOnly": boolean(),
            "uidMap": string(),
            "gidMap": string(),
        },
        required=("driveName", "mountPath", "drivePath", "readOnly"),
    ),
    "DriveListResponse": obj({"mounts": array(ref("DriveMountInfo"))}, required=("mounts",)),
    "DriveMountResponse": {
        "allOf": [
            ref("DriveMountInfo"),
            obj({"success": boolean(), "message": string()}, required=("success", "message")),
        ]
    },
    "DriveUnmountResponse": obj(
        {"success": boolean(), "message": string(), "mountPath": string()}, required=("success", "message", "mountPath")
    ),
    # --- MCP
    "JsonRpcRequest": obj(
        {
            "jsonrpc": string(enum=["2.0"]),
            "id": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "method": string("`initialize`, `tools/list`, `tools/call`, `ping`, a notification..."),
            "params": obj({}),
        },
        required=("jsonrpc", "method"),
    ),
    "JsonRpcResponse": obj(
        {
            "jsonrpc": string(enum=["2.0"]),
            "id": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
            "result": obj({}),
            "error": obj({"code": integer(), "message": string(), "data": {}}, required=("code", "message")),
        },
        required=("jsonrpc",),
    ),
}

# --- operations ------------------------------------------------------------------------

WELCOME = op("system", "Welcome message", ok(ref("Welcome")))
JSON_DOCUMENT = ok(obj({}, description="This OpenAPI document."))

PROCESS_404 = {404: "No such process."}


def _system() -> dict[str, Schema]:
    return {
        "/": {method: WELCOME for method in ("get", "post", "put", "delete", "patch")},
        "/health": {"get": op("system", "Health and version", ok(ref("HealthResponse")), public=True)},
        "/upgrade": {
            "post": op(
                "system",
                "Upgrade the daemon in place",
                {
                    **ok(ref("UpgradeResponse"), "Started; `/health`'s `lastUpgrade` tells how it ends."),
                    **errors(
                        {
                            409: "An upgrade is already running, or this install cannot upgrade in place (not the binary, or SANDBOX_DEV_MODE)."
                        }
                    ),
                },
                description="Downloads (or copies `path`), validates and re-execs the static binary; managed "
                "processes keep running. A missing or invalid body means the defaults.",
                body=json_body(ref("UpgradeRequest"), required=False),
            )
        },
        "/environment/reload": {
            "post": op(
                "system",
                "Apply the metadata document's environment",
                {
                    **ok(ref("EnvironmentReloadResponse")),
                    **errors(
                        {
                            404: "No metadata document (`BL_METADATA_PATH`).",
                            500: "The metadata document is unreadable or not `{generation, environment}`.",
                        }
                    ),
                },
                description="For processes started afterwards.",
            )
        },
        "/openapi.json": {"get": op("docs", "This document", JSON_DOCUMENT)},
        "/swagger": {
            "get": op(
                "docs",
                "Redirect to the API docs page",
                {"301": {"description": "To `/swagger/index.html`.", "headers": {"Location": {"schema": string()}}}},
            )
        },
        "/swagger/index.html": {
            "get": op("docs", "The API docs page (works offline)", content({"text/html": string()}))
        },
        "/swagger/doc.json": {"get": op("docs", "This document (the original's address)", JSON_DOCUMENT)},
    }


def _process() -> dict[str, Schema]:
    stream_note = (
        "Every line from the first, then live lines, as `stdout:<line>` / `stderr:<line>`; `[keepalive]` "
        "every 30 s; the response ends when the process ends."
    )
    return {
        "/process": {
            "post": op(
                "process",
                "Start a process",
                {
                    **content(
                        {"application/json": ref("ProcessResponse"), "application/x-ndjson": ref("ProcessEvent")},
                        "The process (once over with `waitForCompletion`). With `Accept: text/event-stream`, an "
                        "NDJSON stream of `stdout`/`stderr`/`keepalive` events ending with a `result` (or `error`).",
                    ),
                    **errors(
                        {
                            400: f"{BAD_BODY} Also: a running process has this name; keepAlive is disabled; an "
                            "invalid environment variable name; a NUL byte in the command or working directory.",
                            422: "The command could not start (working directory missing...), or `timeout` ran out "
                            "(the process keeps running).",
                        }
                    ),
                },
                body=json_body(ref("ProcessRequest")),
            ),
            "get": op("process", "List processes", ok(array(ref("ProcessResponse")))),
        },
        "/process/{identifier}": {
            "get": op(
                "process",
                "Get a process",
                {**ok(ref("ProcessResponse")), **errors(PROCESS_404)},
                parameters=(PROCESS_ID,),
            ),
            "delete": op(
                "process",
                "Stop a process",
                {**ok(ref("MessageResponse")), **errors({404: "No such process, or it is not running."})},
                description="SIGTERM to the whole tree, SIGKILL after the grace period.",
                parameters=(PROCESS_ID,),
            ),
        },
        "/process/{identifier}/logs": {
            "get": op(
                "process",
                "Get a process's output",
                {**ok(ref("ProcessLogs")), **errors(PROCESS_404)},
                parameters=(PROCESS_ID,),
            ),
        },
        "/process/{identifier}/logs/stream": {
            "get": op(
                "process",
                "Stream a process's output",
                {**content({"text/plain": string(stream_note)}, "A stream of lines."), **errors(PROCESS_404)},
                description=stream_note,
                parameters=(PROCESS_ID,),
            ),
        },
        "/process/{identifier}/wait": {
            "get": op(
                "process",
                "Wait for a process to end",
                {
                    **ok(ref("ProcessResponse"), "The process, over or still running when the timeout ran out."),
                    **errors({400: "Invalid timeout.", **PROCESS_404}),
                },
                parameters=(
                    PROCESS_ID,
                    query("timeout", number(minimum=0, maximum=3600), "Seconds to wait at most (default 60)."),
                ),
            ),
        },
        "/process/{identifier}/kill": {
            "delete": op(
                "process",
                "Kill a process",
                {**ok(ref("MessageResponse")), **errors({404: "No such process, or nothing left to kill."})},
                description="SIGKILL to the whole tree.",
                parameters=(PROCESS_ID,),
            ),
        },
        "/process/{identifier}/stdin": {
            "post": op(
                "process",
                "Write to a process's stdin",
                {
                    **ok(ref("StdinResponse")),
                    **errors(
                        {
                            **PROCESS_404,
                            409: "The process was not started with `stdin: true`, is over, or its stdin is closed.",
                        }
                    ),
                },
                parameters=(PROCESS_ID,),
                body={"required": True, "content": {"application/octet-stream": {"schema": BINARY}}},
            ),
            "delete": op(
                "process",
                "Close a process's stdin",
                {**ok(ref("SuccessResponse")), **errors({**PROCESS_404, 409: "No stdin pipe."})},
                parameters=(PROCESS_ID,),
            ),
        },
    }


def _filesystem() -> dict[str, Schema]:
    path_errors = {400: "Invalid path (a NUL byte, `~` without a home directory...)."}
    tree_params = (
        query("recursive", boolean(), "Every level (full paths) rather than one."),
        query("content", boolean(), "With `recursive`: include each file's content."),
        query("patterns", string(), "Comma-separated name globs files must match."),
        query("excludeDirs", string(), "Comma-separated directory names to skip."),
        query("excludeHidden", boolean(), "Skip names starting with `.`."),
        query("maxFiles", integer(minimum=0), "Over this many files: 422 (default and 0: 10000)."),
        query("maxBytes", integer(minimum=0), "Over this much content: 422 (default and 0: 32 MiB)."),
    )
    return {
        "/filesystem/{path}": {
            "get": op(
                "filesystem",
                "Read a file or list a directory",
                {
                    **content(
                        {
                            "application/json": {"anyOf": [ref("Directory"), ref("FileWithContent")]},
                            "*/*": BINARY,
                        },
                        "A directory listing, a file as JSON, or (with `Accept: application/octet-stream` or "
                        "`download=true`) its raw bytes, with the type its extension gives (`.txt`: text/plain, "
                        "otherwise application/octet-stream). A JSON read of a file over 256 KiB is streamed "
                        "(chunked), so any size costs the server bounded memory.",
                    ),
                    "206": {"description": "The requested range.", "content": {"*/*": {"schema": BINARY}}},
                    "304": {"description": "Not modified since `If-Modified-Since`."},
                    **errors(
                        {
                            **path_errors,
                            404: "No such file or directory.",
                            400: "Invalid path (a NUL byte, `~` without a home directory...), or a name too long.",
                            416: "The range starts past the end of the file, or is an empty suffix (`bytes=-0`).",
                            422: "The file cannot be read: permission denied, a symlink loop, or not a regular file "
                            "(a device, FIFO or socket is not read as JSON content; its download is as before).",
                            500: "stat failed for another reason than a missing file (not a directory, permission "
                            "denied...): the original's status.",
                        }
                    ),
                },
                parameters=(
                    FILE_PATH,
                    query("download", boolean(), "Raw bytes rather than JSON."),
                    header("Range", "Raw bytes only: one `bytes=a-b` range."),
                    header(
                        "If-Range",
                        "Raw bytes only: the Range applies only if this is the file's Last-Modified "
                        "date; anything else (an ETag, garbage) gets the whole file.",
                    ),
                    header("If-Modified-Since", "Raw bytes only: 304 when the file is not newer."),
                ),
            ),
            "put": op(
                "filesystem",
                "Write a file or make a directory",
                {
                    **ok(ref("SuccessResponse")),
                    **errors(
                        {
                            400: f"{BAD_BODY} Also: invalid permissions, a multipart form without `file`.",
                            413: "The body is over `SANDBOX_MAX_UPLOAD_BYTES`.",
                            422: "The file cannot be written (a directory is in the way, permission denied, the path "
                            "is a device, FIFO or socket, which is never replaced...).",
                            507: "The disk is full; the old file is left as it was.",
                        }
                    ),
                },
                description="Atomic: readers see the old file or the new one. JSON (`content`, or `isDirectory`), "
                "a multipart form (`file`, `permissions`) or raw bytes (`?permissions=`).",
                parameters=(FILE_PATH, query("permissions", string(pattern="^[0-7]+$"), "Octal mode of a raw upload.")),
                body={
                    "required": True,
                    "content": {
                        "application/json": {"schema": ref("FileRequest")},
                        "multipart/form-data": {"schema": ref("FileUpload")},
                        "application/octet-stream": {"schema": BINARY},
                    },
                },
            ),
            "delete": op(
                "filesystem",
                "Delete a file or directory",
                {
                    **ok(ref("SuccessResponse")),
                    **errors(
                        {
                            **path_errors,
                            404: "No such file or directory.",
                            422: "The directory is not empty (without `recursive`), or permission denied.",
                        }
                    ),
                },
                parameters=(FILE_PATH, RECURSIVE),
            ),
        },
        "/filesystem/tree/{path}": {
            "get": op(
                "filesystem",
                "A directory tree",
                {
                    **ok(ref("Directory")),
                    **errors(
                        {
                            400: "Not a directory.",
                            404: "No such directory.",
                            422: "Over `maxFiles` or `maxBytes` (nothing partial), or unreadable.",
                        }
                    ),
                },
                description="The path is always absolute here (`/filesystem/tree/tmp/x` is `/tmp/x`).",
                parameters=(FILE_PATH, *tree_params),
            ),
            "put": op(
                "filesystem",
                "Write many files at once",
                {
                    **ok(ref("Directory"), "The directory, listed after the writes."),
                    **errors(
                        {
                            400: f"{BAD_BODY} Also: a key with a `..` component, or naming the root.",
                            422: "A file cannot be written (what this request created is removed).",
                            507: "The disk is full (what this request created is removed).",
                        }
                    ),
                },
                parameters=(FILE_PATH,),
                body=json_body(ref("TreeRequest")),
            ),
            "delete": op(
                "filesystem",
                "Delete a directory",
                {
                    **ok(ref("SuccessResponse")),
                    **errors(
                        {
                            400: "Invalid path.",
                            404: "No such directory.",
                            422: "Missing, not a directory, not empty (without `recursive`), or permission denied.",
                        }
                    ),
                },
                parameters=(FILE_PATH, RECURSIVE),
            ),
        },
        "/filesystem-copy": {
            "post": op(
                "filesystem",
                "Copy a file or directory",
                {
                    **ok(ref("CopyResponse")),
                    **errors(
                        {
                            400: f"{BAD_BODY} Also: a copy onto or into itself.",
                            404: "No such source.",
                            409: "The target exists and `noOverwrite` is set (`code: FILE_ALREADY_EXISTS`).",
                            422: "The copy failed; the source is a device, FIFO or socket; the target is one.",
                            507: "The disk is full.",
                        }
                    ),
                },
                description="`cp -r` semantics; paths are relative to WORKDIR unless absolute.",
                body=json_body(ref("CopyRequest")),
            ),
        },
    }


def _multipart() -> dict[str, Schema]:
    return {
        "/filesystem-multipart": {
            "get": op("multipart", "List upload sessions", ok(ref("MultipartListUploadsResponse"))),
        },
        "/filesystem-multipart/initiate/{path}": {
            "post": op(
                "multipart",
                "Start an upload to a path",
                {
                    **ok(ref("MultipartInitiateResponse")),
                    **errors(
                        {
                            400: "Invalid path or permissions.",
                            500: "The session cannot be created (`failed to initiate upload: ...`).",
                        }
                    ),
                },
                description="A missing or broken body means the default mode (0644).",
                parameters=(FILE_PATH,),
                body=json_body(ref("MultipartInitiateRequest"), required=False),
            ),
        },
        "/filesystem-multipart/{uploadId}/part": {
            "put": op(
                "multipart",
                "Upload a part",
                {
                    **ok(ref("MultipartPartResponse")),
                    **errors(
                        {
                            400: "Missing or invalid partNumber (1..10000), or no `file` field.",
                            404: "No such upload.",
                            413: "The part is over `SANDBOX_MAX_UPLOAD_BYTES`.",
                            500: "The part cannot be stored (`failed to upload part: ...`).",
                        }
                    ),
                },
                description="Parts may come in any order and in parallel; sending a number again replaces it.",
                parameters=(UPLOAD_ID, query("partNumber", integer(minimum=1, maximum=10000), required=True)),
                body={"required": True, "content": {"multipart/form-data": {"schema": ref("PartUpload")}}},
            ),
        },
        "/filesystem-multipart/{uploadId}/complete": {
            "post": op(
                "multipart",
                "Assemble the parts into the file",
                {
                    **ok(ref("SuccessResponse")),
                    **errors(
                        {
                            400: f"{BAD_BODY} Also: no parts, a part listed twice, a part missing, an etag mismatch.",
                            404: "No such upload.",
                            422: "The destination is a directory, device, FIFO or socket (left as it is).",
                            500: "The final file cannot be created (`failed to complete upload: ...`).",
                        }
                    ),
                },
                parameters=(UPLOAD_ID,),
                body=json_body(ref("MultipartCompleteRequest")),
            ),
        },
        "/filesystem-multipart/{uploadId}/abort": {
            "delete": op(
                "multipart",
                "Abort an upload",
                {**ok(ref("SuccessResponse")), **errors({404: "No such upload."})},
                parameters=(UPLOAD_ID,),
            ),
        },
        "/filesystem-multipart/{uploadId}/parts": {
            "get": op(
                "multipart",
                "List an upload's parts",
                {**ok(ref("MultipartListPartsResponse")), **errors({404: "No such upload."})},
                parameters=(UPLOAD_ID,),
            ),
        },
    }


def _search() -> dict[str, Schema]:
    max_results = query("maxResults", integer(minimum=0), "At most this many (capped at 1000; 0: all).")
    exclude_dirs = query("excludeDirs", string(), "Comma-separated directory names; replaces the default list.")
    exclude_hidden = query("excludeHidden", boolean(), "Skip names starting with `.` (default true).")
    return {
        "/filesystem-find/{path}": {
            "get": op(
                "search",
                "Find files or directories by name",
                {**ok(ref("FindResponse")), **errors({400: "Invalid parameter.", 404: "No such directory."})},
                description="Paths are relative to the root; patterns follow Go's `filepath.Match`.",
                parameters=(
                    FILE_PATH,
                    query("type", string(enum=["file", "directory"]), "Default `file`."),
                    query("patterns", string(), "Comma-separated name globs (`*.py,*.md`)."),
                    max_results,
                    exclude_dirs,
                    exclude_hidden,
                ),
            ),
        },
        "/filesystem-search/{path}": {
            "get": op(
                "search",
                "Fuzzy search of paths",
                {
                    **ok(ref("FuzzySearchResponse")),
                    **errors({400: "Invalid parameter, or no query.", 404: "No such directory."}),
                },
                description="Ranked like fzf; space-separated terms must all match, smart case. Without `query` "
                "the path is the pattern (the original's quirk).",
                parameters=(FILE_PATH, query("query", string()), max_results, exclude_dirs, exclude_hidden),
            ),
        },
        "/filesystem-content-search/{path}": {
            "get": op(
                "search",
                "Search file contents (ripgrep)",
                {
                    **ok(ref("ContentSearchResponse")),
                    **errors(
                        {
                            400: "No query, an invalid parameter or regular expression, or no such directory.",
                            422: "The directory cannot be read.",
                            500: "ripgrep failed (`content search failed: ...`).",
                            501: "ripgrep is not installed.",
                        }
                    ),
                },
                description="`.gitignore` is honoured and binary files are skipped.",
                parameters=(
                    FILE_PATH,
                    query(
                        "query",
                        string(minLength=1),
                        "Literal text, or a regular expression with `regex`.",
                        required=True,
                    ),
                    query("caseSensitive", boolean()),
                    query("regex", boolean()),
                    query("contextLines", integer(minimum=0), "Lines around each match (at most 20)."),
                    query("filePattern", string(), "A glob the file names must match."),
                    exclude_dirs,
                    query("maxResults", integer(minimum=0), "Default 100, capped at 1000; 0: all."),
                ),
            ),
        },
        "/watch/filesystem/{path}": {
            "get": op(
                "watch",
                "Watch a directory for changes",
                {
                    **content(
                        {"text/plain": string()},
                        "A stream: `[keepalive]` once the watch is armed, then a JSON `WatchEvent` per line, "
                        "`[keepalive]` every 30 s. It ends when the client leaves.",
                    ),
                    **errors(
                        {400: "Invalid path.", 404: "No such directory.", 422: "The directory cannot be watched."}
                    ),
                },
                description="End the path with `/**` to watch every level below it.",
                parameters=(FILE_PATH, query("ignore", string(), "Comma-separated substrings of paths to leave out.")),
            ),
        },
    }


def _network() -> dict[str, Schema]:
    bad_pid = {400: "Invalid pid."}
    tools_missing = "The `wg`/`ip` programs are not installed."
    return {
        "/network/process/{pid}/ports": {
            "get": op(
                "network",
                "Sockets of a process tree",
                {**ok(ref("PortsResponse")), **errors(bad_pid)},
                parameters=(PID,),
            ),
        },
        "/network/process/{pid}/monitor": {
            "post": op(
                "network",
                "Call back on new ports of a process tree",
                {**ok(ref("SuccessResponse")), **errors({400: f"Invalid pid. {BAD_BODY}", 404: "No such process."})},
                parameters=(PID,),
                body=json_body(ref("PortMonitorRequest")),
            ),
            "delete": op(
                "network",
                "Stop the port callbacks of a process",
                {**ok(ref("SuccessResponse")), **errors(bad_pid)},
                parameters=(PID,),
            ),
        },
        "/network/tunnel/config": {
            "put": op(
                "network",
                "Bring up the WireGuard tunnel",
                {
                    **ok(ref("SuccessResponse")),
                    **errors(
                        {
                            400: f"{BAD_BODY} `config` is required.",
                            422: "Invalid configuration (`invalid tunnel config: ...`).",
                            500: "A step failed (`failed to apply tunnel config: ...`).",
                            501: tools_missing,
                        }
                    ),
                },
                description="Replaces the running tunnel, if any. The configuration holds keys: there is no GET.",
                body=json_body(ref("TunnelConfigRequest")),
            ),
        },
        "/network/tunnel": {
            "delete": op(
                "network",
                "Take the WireGuard tunnel down",
                {
                    **ok(ref("SuccessResponse")),
                    **errors({400: "No WireGuard client is running.", 500: "Teardown failed.", 501: tools_missing}),
                },
            ),
        },
    }


def _codegen() -> dict[str, Schema]:
    not_configured = "No provider key (`RELACE_API_KEY` or `MORPH_API_KEY`), or invalid input."
    return {
        "/codegen/fastapply/{path}": {
            "put": op(
                "codegen",
                "Merge an edit snippet into a file",
                {
                    **ok(ref("ApplyEditResponse")),
                    **errors({400: f"{not_configured} {BAD_BODY}", 422: "The provider failed."}),
                },
                description="A model (Relace, else Morph) merges the edit; the file (created if missing) is "
                "written atomically.",
                parameters=(FILE_PATH,),
                body=json_body(ref("ApplyEditRequest")),
            ),
        },
        "/codegen/reranking/{path}": {
            "get": op(
                "codegen",
                "The files most relevant to a query",
                {
                    **ok(ref("RerankingResponse")),
                    **errors({400: f"{not_configured} Also: no query, not a directory.", 422: "The provider failed."}),
                },
                parameters=(
                    FILE_PATH,
                    query("query", string(), required=True),
                    query("scoreThreshold", number(), "Default 0.5."),
                    query("tokenLimit", integer(), "Default 30000."),
                    query("filePattern", string(), "A regular expression the paths must match."),
                ),
            ),
        },
    }


def _drives() -> dict[str, Schema]:
    blfs_missing = "Blaxel's `blfs` helper (or fusermount/umount) is not installed."
    return {
        "/drives/mount": {
            "get": op(
                "drives",
                "Mounted drives",
                {**ok(ref("DriveListResponse")), **errors({500: "The mount table cannot be read."})},
            ),
            "post": op(
                "drives",
                "Mount a drive",
                {
                    **ok(ref("DriveMountResponse"), "Mounted (mounting the same drive again is a no-op)."),
                    **errors(
                        {
                            400: f"{BAD_BODY} Also: an invalid name or path.",
                            409: "Another mount is at that path.",
                            500: "The mount failed (`Failed to mount drive: ...`).",
                            501: blfs_missing,
                        }
                    ),
                },
                body=json_body(ref("DriveMountRequest")),
            ),
        },
        "/drives/mount/{mountPath}": {
            "delete": op(
                "drives",
                "Unmount a drive",
                {
                    **ok(ref("DriveUnmountResponse")),
                    **errors(
                        {
                            400: "Empty or invalid path.",
                            500: "Not a drive mount point, or the unmount failed (the original's status).",
                            501: blfs_missing,
                        }
                    ),
                },
                parameters=(path_param("mountPath", "The mount point (absolute whatever its spelling)."),),
            ),
        },
    }


PROXY_METHODS = ("get", "head", "post", "put", "patch", "delete", "options")


def _proxy() -> dict[str, Schema]:
    port = path_param("port", "A local port.", integer(minimum=1, maximum=65535))
    relayed = {
        "default": {"description": "Whatever the app on that port answers, relayed (bodies streamed both ways)."},
        **errors({400: "Invalid port.", 502: "Nothing is listening on that port.", 504: "Connecting timed out."}),
    }

    def forward(parameters: tuple[Schema, ...]) -> Schema:
        return {
            method: op(
                "proxy",
                "Reverse proxy to http://127.0.0.1:{port}/",
                relayed,
                description="Any method, WebSocket upgrades included; OPTIONS goes to the app.",
                parameters=parameters,
            )
            for method in PROXY_METHODS
        }

    return {
        "/port/{port}": forward((port,)),
        "/port/{port}/{path}": forward((port, path_param("path", "The rest of the URL, sent to the app."))),
    }


def _mcp_and_terminal() -> dict[str, Schema]:
    rpc_error = {"application/json": {"schema": ref("JsonRpcResponse")}}
    return {
        "/mcp": {
            "post": op(
                "mcp",
                "MCP over streamable HTTP (stateless, JSON replies)",
                {
                    **ok(ref("JsonRpcResponse")),
                    "202": {"description": "A notification or a response was accepted (empty body)."},
                    "400": {
                        "description": "Malformed JSON-RPC (a JSON-RPC error), or a Content-Type other than "
                        "application/json (plain text).",
                        "content": {**rpc_error, "text/plain": {"schema": string()}},
                    },
                    "406": {"description": "`Accept` does not allow application/json.", "content": rpc_error},
                },
                description="The MCP tools (`tools/list`): processes, files, codegen helpers. `initialize` is "
                "optional; there is no `Mcp-Session-Id`.",
                body=json_body(ref("JsonRpcRequest")),
            ),
            "get": op("mcp", "Not supported (no SSE)", errors({405: "Use POST."})),
        },
        "/terminal": {
            "get": op("terminal", "The web terminal page (works offline)", content({"text/html": string()})),
        },
        "/terminal/ws": {
            "get": op(
                "terminal",
                "The terminal's WebSocket",
                {
                    "101": {
                        "description": 'The WebSocket. Client frames: `{"type":"input","data"}`, '
                        '`{"type":"resize","cols","rows"}`; server frames: `{"type":"output","data"}`, '
                        '`{"type":"error","data"}`.'
                    },
                    **errors({400: "Not a WebSocket upgrade."}),
                },
                description="A session outlives its socket: reconnecting with the same `sessionId` replays the "
                "last 100 KiB of output.",
                parameters=(
                    query("sessionId", string(), "Default `default`."),
                    query("cols", integer(minimum=1, maximum=65535)),
                    query("rows", integer(minimum=1, maximum=65535)),
                    query("workingDir", string(), "Default WORKDIR."),
                    query("shell", string(), "Default $SHELL, else zsh, bash, sh or ash."),
                ),
            ),
        },
        "/terminal/static/{name}": {
            "get": op(
                "terminal",
                "The terminal page's scripts and styles",
                {
                    **content({"application/javascript": string(), "text/css": string()}),
                    **errors({404: "No such asset."}),
                },
                parameters=(path_param("name", "An asset name (`xterm.js`)."),),
            ),
        },
    }


# --- BEGIN shell sessions (branch shell16): the one block for /session*; declared in the contract at merge ---
def _sessions() -> dict[str, Schema]:
    session_id = path_param("id", "The session's id (its name when one was given).")
    session = obj(
        {
            "id": string("The session's id: its name, or a generated `session-<hex>`."),
            "state": string("`starting`, `idle`, `running` (a command runs) or `ended`.", enum=list(SESSION_STATES)),
            "shell": string("The shell program."),
            "cwd": string("The shell's working directory after its last command."),
            "workingDir": string("The directory it started in (and restarts in)."),
            "pid": nullable(integer("The shell's pid; null once ended.")),
            "createdAt": string("RFC 3339, UTC."),
            "lastUsedAt": string("RFC 3339, UTC: idle sessions are deleted `SANDBOX_SESSION_IDLE_SECONDS` after it."),
            "execCount": integer("Commands run so far (the last `execId`)."),
            "endReason": string("Once ended: how (`the shell exited with code 0`, `killed by SIGKILL`...)."),
        },
        ("id", "state", "shell", "cwd", "workingDir", "pid", "createdAt", "lastUsedAt", "execCount"),
    )
    result = obj(
        {
            "sessionId": string(),
            "execId": integer("Number of this command in its session: its output is read back with it."),
            "output": string(
                "stdout and stderr as one stream, in the order written. Past `SANDBOX_SESSION_INLINE_BYTES`: the "
                "head, a line saying which bytes were left out, and the tail."
            ),
            "exitCode": nullable(integer("The command's exit code (130 after SIGINT, 137 after SIGKILL).")),
            "timedOut": boolean("Interrupted at `timeout` or after `idleTimeout` seconds of silence."),
            "cwd": string("The shell's working directory afterwards."),
            "outputBytes": integer("Bytes written in all."),
            "truncated": boolean("Whether `output` leaves out a middle part."),
            "omittedFrom": integer("When truncated: offset of the first byte left out."),
            "omittedTo": integer("When truncated: offset after the last byte left out."),
            "sessionEnded": boolean("The command ended the shell (exit, exec, kill): later calls answer 409."),
            "endReason": string("When the session ended: how."),
        },
        ("sessionId", "execId", "output", "exitCode", "timedOut", "cwd", "outputBytes", "truncated", "sessionEnded"),
    )
    chunk = obj(
        {
            "sessionId": string(),
            "execId": integer(),
            "offset": integer(),
            "nextOffset": integer("Where the next read starts (the data ends on a character boundary)."),
            "data": string("The bytes read, as UTF-8 text."),
            "outputBytes": integer("Bytes written so far."),
            "storedBytes": integer("Bytes kept (at most `SANDBOX_SESSION_MAX_OUTPUT_BYTES` on disk)."),
            "complete": boolean("The command has ended."),
            "eof": boolean("The command has ended and everything was read."),
        },
        ("sessionId", "execId", "offset", "nextOffset", "data", "outputBytes", "storedBytes", "complete", "eof"),
    )
    missing = {404: "No such session."}
    return {
        "/session": {
            "post": op(
                "sessions",
                "Start a shell session",
                {
                    **ok(session),
                    **errors(
                        {
                            400: f"{BAD_BODY} Also: an invalid name, a shell that is not a POSIX shell or not "
                            "installed, a missing working directory, an invalid environment variable.",
                            409: "A session with this name exists.",
                            429: "`SANDBOX_SESSION_MAX` sessions exist.",
                        }
                    ),
                },
                body=json_body(
                    obj(
                        {
                            "name": string("Its id (letters, digits, `.`, `_`, `-`; up to 64); generated if absent."),
                            "workingDir": string("Where it starts (default: the working directory)."),
                            "env": obj({}, additionalProperties=string(), description="Variables to set."),
                            "shell": string("bash, sh, dash, ash, zsh, ksh or mksh (default bash, else sh)."),
                        }
                    ),
                    required=False,
                ),
            ),
            "get": op("sessions", "List shell sessions", ok(obj({"sessions": array(session)}, ("sessions",)))),
        },
        "/session/{id}": {
            "get": op("sessions", "Get a shell session", {**ok(session), **errors(missing)}, parameters=(session_id,)),
            "delete": op(
                "sessions",
                "Delete a shell session",
                {**ok(obj({"id": string(), "message": string()}, ("id", "message"))), **errors(missing)},
                description="Kills the shell and every process it started.",
                parameters=(session_id,),
            ),
        },
        "/session/{id}/restart": {
            "post": op(
                "sessions",
                "Restart a shell session",
                {**ok(session), **errors({**missing, 400: "The shell could not start.", 409: "It is starting."})},
                description="Kills the shell and all it started; a fresh one starts in `workingDir` with `env`.",
                parameters=(session_id,),
            ),
        },
        "/session/{id}/exec": {
            "post": op(
                "sessions",
                "Run a command in a shell session",
                {
                    **ok(result),
                    **errors({**missing, 400: BAD_BODY, 409: "The session has ended (`endReason`) or is running."}),
                },
                description="The command runs in the shell itself (cd, export, functions persist) with stdin at "
                "EOF. Past `timeout` (default 120 s; 0: none) or `idleTimeout` seconds without output, its job "
                "gets SIGINT, then SIGKILL 2 s later; the session stays usable.",
                parameters=(session_id,),
                body=json_body(
                    obj(
                        {
                            "command": string("The command line."),
                            "timeout": number("Seconds (default 120; 0: none)."),
                            "idleTimeout": number("Seconds without output (default: none)."),
                        },
                        ("command",),
                    )
                ),
            ),
        },
        "/session/{id}/output/{execId}": {
            "get": op(
                "sessions",
                "Read a command's output by offset",
                {
                    **ok(chunk),
                    **errors(
                        {
                            400: "offset or maxBytes not a whole number, negative or past the end.",
                            404: "No such session, or the output is no longer kept (the last 4 are).",
                            416: "The offset is past the bytes kept on disk (`storedBytes`).",
                        }
                    ),
                },
                parameters=(
                    session_id,
                    path_param("execId", "The `execId` the exec answered.", integer(minimum=1)),
                    query("offset", integer(minimum=0), "Byte offset (default 0)."),
                    query("maxBytes", integer(minimum=1), "At most this many bytes (default 65536, up to 4 MiB)."),
                ),
            ),
        },
    }


SESSION_STATES = ("starting", "idle", "running", "ended")
SESSIONS_TAG = {"name": "sessions", "description": "Persistent shells: cwd, variables and functions carry over."}
# --- END shell sessions ---


TAGS = [
    {"name": "system", "description": "Welcome, health, upgrade, environment."},
    {"name": "process", "description": "Run and supervise processes; their output is kept on disk."},
    {"name": "filesystem", "description": "Read, write, list, delete, copy; writes are atomic."},
    {"name": "multipart", "description": "S3-style uploads of large files in parts."},
    {"name": "search", "description": "Find by name, fuzzy search, content search."},
    {"name": "watch", "description": "Streams of filesystem changes."},
    {"name": "network", "description": "Ports of process trees, port callbacks, the WireGuard tunnel."},
    {"name": "codegen", "description": "Model-backed edit merging and file ranking (needs a provider key)."},
    {"name": "drives", "description": "Blaxel drives (blfs)."},
    {"name": "proxy", "description": "Reach an app's port through the daemon."},
    {"name": "mcp", "description": "The same services as MCP tools."},
    {"name": "terminal", "description": "A web terminal."},
    {"name": "docs", "description": "This document and its page."},
    SESSIONS_TAG,  # shell sessions (branch shell16)
]

DESCRIPTION = """\
The daemon inside a Blaxel sandbox: processes, files, search, watch, network, MCP, terminal.

- Errors are JSON `{"error": "..."}`; an unknown route (or a known path with a method not listed
  here) is a plain-text `404 page not found`.
- OPTIONS on any path answers 204 with the CORS headers; most GET routes also answer HEAD with an
  empty 200 that checks nothing (as the original). Neither is listed.
- With `SANDBOX_API_TOKEN` set, every route but `/health` and OPTIONS needs `Authorization: Bearer
  <token>` (or `X-Blaxel-Authorization`); without it there is no authentication.
- File paths in URLs: relative to WORKDIR, or absolute as `//tmp/x` or `%2Ftmp%2Fx`.
"""


@cache
def document() -> dict[str, Any]:
    """The whole document (do not mutate it: it is shared)."""
    paths: dict[str, Schema] = {}
    for group in (
        _system,
        _process,
        _filesystem,
        _multipart,
        _search,
        _network,
        _codegen,
        _drives,
        _proxy,
        _mcp_and_terminal,
        _sessions,  # shell sessions (branch shell16)
    ):
        paths.update(group())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sandbox-api",
            "version": __version__,
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": TAGS,
        "security": [{}, {"bearerAuth": []}, {"blaxelAuthorization": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "responses": {
                "Unauthorized": {
                    "description": "A token is configured and the request lacks it.",
                    "content": {"application/json": {"schema": ref("Error")}},
                }
            },
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "blaxelAuthorization": {"type": "apiKey", "in": "header", "name": "X-Blaxel-Authorization"},
            },
        },
    }


TERMINAL_PATHS = ("/terminal", "/terminal/ws", "/terminal/static/{name}")


@cache
def document_json(terminal: bool = True) -> bytes:
    """The document as JSON bytes; without the terminal routes when they are disabled."""
    doc = document()
    if not terminal:
        doc = copy.deepcopy(doc)
        for path in TERMINAL_PATHS:
            del doc["paths"][path]
        doc["tags"] = [t for t in doc["tags"] if t["name"] != "terminal"]
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
