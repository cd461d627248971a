"""MCP tools for code agents (the original's `codegen*` set): file and grep search, line
ranges, directory listing, and the two model-backed tools when a provider key is set."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import msgspec

from .. import paths
from ..codegen.wire import RankedFile
from ..contract import Shape, doc
from ..errors import ApiError, Invalid
from ..filesystem.wire import Directory
from .tools import Arguments, Services, Tool

Success = Annotated[bool, doc("true when the tool did its work")]
Note = Annotated[str | None, doc("A human-readable note on the outcome")]


class FileSearchArguments(Arguments):
    query: Annotated[str, doc("Letters of the file name to look for, in order, e.g. usrctl for user_controller")]
    directory: Annotated[
        str,
        doc("Where to look, relative to the working directory (default: the working directory); must stay inside it"),
    ] = ""


class FileSearchResult(Shape, omit_defaults=False):
    success: Success
    matches: Annotated[list[str], doc("Absolute paths of the files found (at most 10)")]
    query: Annotated[str, doc("The query, repeated")]


class CodebaseSearchArguments(Arguments):
    query: Annotated[str, doc("What the code you look for does")]
    targetDirectories: Annotated[list[str], doc("Directories to look in, as glob patterns")] = msgspec.field(
        default_factory=list
    )


class CodebaseSearchResult(Shape, omit_defaults=False):
    success: Success
    results: Annotated[list[Any], doc("Always empty")]
    query: Annotated[str, doc("The query, repeated")]


class GrepArguments(Arguments):
    query: Annotated[str, doc("The regular expression to look for (ripgrep syntax)")]
    caseSensitive: Annotated[bool, doc("Match letter case exactly (default false: case is ignored)")] = False
    includePattern: Annotated[str, doc("Search only files matching this glob, e.g. *.py")] = ""
    excludePattern: Annotated[str, doc("Skip files matching this glob, e.g. *_test.go")] = ""


class GrepResult(Shape, omit_defaults=False):
    success: Success
    results: Annotated[
        str, doc("ripgrep's JSON lines (begin, match, end, summary), paths relative to the working directory")
    ]


class ReadRangeArguments(Arguments):
    targetFile: Annotated[str, doc("The file: absolute, or relative to the working directory")]
    startLineOneIndexed: Annotated[int, doc("Number of the first line to read (1 is the first line)")]
    endLineOneIndexedInclusive: Annotated[
        int, doc("Number of the last line to read, included; at most the file's line count")
    ]


class ReadRangeResult(Shape, omit_defaults=False):
    success: Success
    content: Annotated[str, doc("The lines asked for, joined by newlines")]
    file: Annotated[str, doc("The file, as given")]


class TargetFile(Arguments):
    targetFile: Annotated[str, doc("The file whose last edit should be applied again")]


class Outcome(Shape):
    success: Success
    message: Note = None


class ListDirArguments(Arguments):
    relativeWorkspacePath: Annotated[
        str,
        doc(
            'The directory, relative to the working directory ("" or "/" for the working directory itself); it must '
            "stay inside it"
        ),
    ]


class ListDirResult(Shape):
    success: Success
    directory: Directory | None = None


class EditRegion(Arguments):
    """One file region"""

    relativeWorkspacePath: Annotated[str, doc("The file, relative to the working directory")]
    startLine: Annotated[int, doc("First line of the region (from 1, included)")] | None = None
    endLine: Annotated[int, doc("Last line of the region (included)")] | None = None


class ParallelApplyArguments(Arguments):
    editPlan: Annotated[str, doc("What to change, and how, in every region")]
    editRegions: Annotated[list[EditRegion], doc("The places to edit")]


class EditFileArguments(Arguments):
    targetFile: Annotated[str, doc("The file to edit, relative to the working directory; created if missing")]
    instructions: Annotated[
        str,
        doc(
            "One sentence, in the first person, saying what the edit does; it helps the merging model settle "
            "anything ambiguous in the sketch"
        ),
    ]
    codeEdit: Annotated[
        str,
        doc(
            "The changed lines only, with a comment standing for each unchanged stretch; never rewrite code that "
            "does not change"
        ),
    ]


class EditFileResult(Shape):
    success: Success
    message: Note = None
    file_path: Annotated[str | None, doc("The file, as given")] = None
    changes_applied: Annotated[str | None, doc("The sketch that was merged into the file")] = None


class RerankArguments(Arguments):
    path: Annotated[str, doc("The directory to look in: absolute, or relative to the working directory")]
    query: Annotated[str, doc("What you look for, in plain words")]
    scoreThreshold: Annotated[float, doc("Leave out files scoring below this, from 0 to 1 (default 0.5)")] = 0
    tokenLimit: Annotated[int, doc("Token budget of the files returned (default 30000)")] = 0
    filePattern: (
        Annotated[str, doc(r"Regular expression a file's path or name must match, e.g. \.py$ keeps Python files only")]
        | None
    ) = None


class RerankResult(Shape):
    success: Success
    files: Annotated[list[RankedFile], doc("The relevant files, best first")]
    message: Note = None


def relative_rg_line(line: str) -> str:
    """An rg JSON line with its path relative to the search root: "./src/a.py" -> "src/a.py" (rg
    was given "." to search, the original let it default to the current directory)."""
    if '"path":{"text":"./' not in line:
        return line
    event = json.loads(line)
    path = event.get("data", {}).get("path")
    if isinstance(path, dict) and isinstance(path.get("text"), str) and path["text"].startswith("./"):
        path["text"] = path["text"][2:]
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def tools(services: Services) -> list[Tool]:
    settings, files = services.settings, services.files

    def inside_workdir(value: str) -> str:
        """A workspace path: relative to the working directory, where a leading "/" means the working
        directory itself (an absolute path already inside it is taken as is); it must stay inside."""
        root = os.path.realpath(settings.workdir)
        inside = value == root or value.startswith(root.rstrip("/") + "/")
        target = os.path.realpath(value if inside else os.path.join(root, value.lstrip("/") or "."))
        if target != root and not target.startswith(root.rstrip("/") + "/"):
            raise ApiError(f"directory {json.dumps(value, ensure_ascii=False)} is outside the working directory")
        return target

    async def file_search(a: FileSearchArguments) -> dict[str, Any]:
        from ..search import fuzzy  # on the first call, as the HTTP fuzzy search

        root = inside_workdir(a.directory)
        found = await fuzzy.search(root, a.query, exclude_dirs=frozenset(), exclude_hidden=True, limit=10)
        matches = [os.path.join(root, m["path"]) for m in found["matches"] if m["type"] == "file"]
        return {"success": True, "matches": matches, "query": a.query}

    async def codebase_search(a: CodebaseSearchArguments) -> dict[str, Any]:
        return {"success": True, "results": [], "query": a.query}

    async def grep(a: GrepArguments) -> dict[str, Any]:
        try:
            lines = await services.content().raw_json(
                settings.workdir,
                a.query,
                case_sensitive=a.caseSensitive,
                include=a.includePattern,
                exclude=a.excludePattern,
            )
        except Invalid as e:  # an invalid pattern: rg's own explanation
            raise ApiError(f"grep search failed: {e.message.removeprefix('grep failed: ')}") from None
        lines = [relative_rg_line(line) for line in lines]
        if not any(line.startswith('{"type":"match"') for line in lines):
            # as the original, where rg's exit status 1 (nothing found) is an error
            raise ApiError(f"grep search failed: no match for {json.dumps(a.query, ensure_ascii=False)}")
        return {"success": True, "results": "".join(line + "\n" for line in lines)}

    async def read_range(a: ReadRangeArguments) -> dict[str, Any]:
        resolved = paths.from_value(a.targetFile, settings.workdir)
        start, end = a.startLineOneIndexed, a.endLineOneIndexedInclusive
        content = await files.read_lines(resolved, start, end) if 1 <= start <= end else None
        if content is None:
            raise ApiError("invalid line range")
        return {"success": True, "content": content, "file": resolved.display}

    async def reapply(a: TargetFile) -> dict[str, Any]:
        return {"success": False, "message": "Reapply functionality not yet implemented"}

    async def list_dir(a: ListDirArguments) -> dict[str, Any]:
        target = inside_workdir(a.relativeWorkspacePath)
        return {"success": True, "directory": await files.list_directory(paths.from_value(target, settings.workdir))}

    async def parallel_apply(a: ParallelApplyArguments) -> dict[str, Any]:
        return {"success": False, "message": "Parallel apply functionality not yet implemented"}

    async def edit_file(a: EditFileArguments) -> dict[str, Any]:
        result = await services.codegen().fastapply(paths.from_value(a.targetFile, settings.workdir), a.codeEdit, None)
        # changesApplied is the sketch that was merged, as the original answers
        return {"success": True, "message": result["message"], "filePath": result["path"], "changesApplied": a.codeEdit}

    async def rerank(a: RerankArguments) -> dict[str, Any]:
        resolved = paths.from_value(a.path, settings.workdir)
        return await services.codegen().rerank(resolved, a.query, a.scoreThreshold, a.tokenLimit, a.filePattern)

    listed = [
        Tool(
            "codegenFileSearch",
            "Find files when you know part of their name but not where they are: the letters of query must appear in "
            "order in a file's name (case ignored). Gives at most 10 absolute paths.",
            FileSearchArguments,
            FileSearchResult,
            file_search,
        ),
        Tool(
            "codegenCodebaseSearch",
            "Semantic search for code related to a question. Not implemented here: it always finds nothing; use "
            "codegenGrepSearch or codegenFileSearch instead.",
            CodebaseSearchArguments,
            CodebaseSearchResult,
            codebase_search,
        ),
        Tool(
            "codegenGrepSearch",
            "Search the text of the files under the working directory with a regular expression (ripgrep): the way "
            "to find exact names, strings or patterns. The answer is ripgrep's JSON output, one JSON object per line, "
            "with paths relative to the working directory. Finding nothing, or an invalid pattern, is an error.",
            GrepArguments,
            GrepResult,
            grep,
        ),
        Tool(
            "codegenReadFileRange",
            "Read some lines of a file, numbered from 1, both ends included. Ask for at most 250 lines per call; read "
            "a long file in several ranges.",
            ReadRangeArguments,
            ReadRangeResult,
            read_range,
        ),
        Tool(
            "codegenReapply",
            "Meant to retry a failed codegenEditFile with a stronger model. Not implemented here: it always answers "
            "success false; make the change with fsEditFile instead.",
            TargetFile,
            Outcome,
            reapply,
        ),
        Tool(
            "codegenListDir",
            "List a directory of the workspace (the working directory): a quick first look before reading or "
            "searching files. Not recursive.",
            ListDirArguments,
            ListDirResult,
            list_dir,
        ),
        Tool(
            "codegenParallelApply",
            "Meant to apply one kind of edit to several places at once. Not implemented here: it always answers "
            "success false; edit each place with fsEditFile instead.",
            ParallelApplyArguments,
            Outcome,
            parallel_apply,
        ),
    ]
    if not services.codegen_enabled:
        return listed
    return listed + [
        Tool(
            "codegenEditFile",
            "Edit a file, or create it, by writing only the lines that change: every unchanged stretch is replaced "
            "by a comment such as `// ... existing code ...` (in the file's language), and a fast model (Relace or "
            "Morph) merges the sketch into the file. Keep the sketch short but give enough untouched lines around "
            "each change to place it.",
            EditFileArguments,
            EditFileResult,
            edit_file,
        ),
        Tool(
            "codegenRerank",
            "Find the files of a directory most relevant to a question in plain words, scored by a model (Relace or "
            "Morph), best first: a good first step to narrow down where to look in a large codebase. Hidden files "
            "and dependency or build directories are skipped.",
            RerankArguments,
            RerankResult,
            rerank,
        ),
    ]
