"""The MCP tool of the exact edits: one tool, `fsTextEditor`, with a `command`.

One tool with `command` and the public tool's snake_case argument names (`view_range`,
`old_str`, `new_str`, `file_text`, `insert_line`, `insert_text`) because that is the shape
models are trained on (Anthropic's `str_replace_based_edit_tool`, OpenHands' and
SWE-agent's `str_replace_editor`): an agent uses it right without reading a schema.
`new_str` is also taken as the text of `insert`, as the tool's earlier versions had it.
"""

from __future__ import annotations

from typing import Any

from ..errors import Invalid
from ..http import paths
from ..mcp.tools import Tool, obj, s
from .service import Edits

COMMANDS = ["view", "str_replace", "create", "insert"]

DESCRIPTION = (
    "View, create and edit text files exactly (the str_replace_based_edit_tool contract). "
    "`view`: a file with line numbers (optionally view_range [start, end], end -1 = to the end), or a directory "
    "two levels deep (hidden entries and node_modules left out). "
    "`str_replace`: replace old_str, which must occur exactly once in the file (whitespace included), by new_str; "
    "otherwise nothing changes and the error says how many times and on which lines it occurs. "
    "`create`: write file_text as the whole file (a file already there is replaced). "
    "`insert`: insert insert_text as whole lines after line insert_line (0 = at the top). "
    "Every change is atomic and keeps the file's mode, owner and line endings (CRLF stays CRLF), and answers a "
    "numbered snippet around it. Every answer carries the file's sha256: pass it back as expected_sha256 to refuse "
    "the edit if someone changed the file since. Paths are absolute or relative to the working directory."
)

INPUT = obj(
    {
        "command": {**s("What to do: view, str_replace, create or insert"), "enum": COMMANDS},
        "path": s("The file or directory: absolute, or relative to the working directory"),
        "view_range": {
            "type": "array",
            "items": {"type": "integer"},
            "description": "view: the lines to show, [start, end] 1-based inclusive; end -1 means to the end",
        },
        "old_str": s("str_replace: the exact text to replace, whitespace included; must occur exactly once"),
        "new_str": s("str_replace: the text to put instead (default: empty, which deletes old_str)"),
        "file_text": s("create: the whole content of the file"),
        "insert_line": {**s("insert: the line after which to insert (0: at the top of the file)", "integer")},
        "insert_text": s("insert: the text to insert, as whole lines"),
        "expected_sha256": s(
            "The file's sha256 as you last saw it (from an earlier answer): the change is refused if the file "
            "is no longer that version"
        ),
    },
    ("command", "path"),
)

OUTPUT = obj(
    {
        "path": s("The path, as given"),
        "type": s("view: file or directory"),
        "content": s("view: the numbered lines of the file, or the directory's entries one per line"),
        "startLine": s("view: the first line shown", "integer"),
        "endLine": s("view: the last line shown", "integer"),
        "totalLines": s("view: the number of lines of the file", "integer"),
        "entries": {
            "type": "array",
            "description": "view of a directory: its entries two levels deep",
            "items": obj({"path": s("Absolute path"), "type": s("file or directory")}, ("path", "type")),
        },
        "truncated": s("view of a directory: true when entries were left out past the limit", "boolean"),
        "created": s("create: true when the file did not exist", "boolean"),
        "snippet": s("After a change: the changed lines and a few around them, numbered"),
        "snippetStartLine": s("The line number of the snippet's first line", "integer"),
        "snippetEndLine": s("The line number of the snippet's last line", "integer"),
        "lineEnding": s("The file's line endings: lf, crlf or mixed"),
        "size": s("The file's size in bytes", "integer"),
        "sha256": s("The file's sha256 now: pass it as expected_sha256 to the next edit"),
    },
    ("path",),
)


def edit_tool(edits: Edits, workdir: str) -> Tool:
    async def handler(
        command: str,
        path: str,
        view_range: list[int] | None = None,
        old_str: str | None = None,
        new_str: str | None = None,
        file_text: str | None = None,
        insert_line: int | None = None,
        insert_text: str | None = None,
        expected_sha256: str | None = None,
    ) -> dict[str, Any]:
        resolved = paths.from_value(path, workdir)  # as every MCP path: relative to WORKDIR, no `~`
        if command == "view":
            return await edits.view(resolved, view_range)
        if command == "str_replace":
            if old_str is None:
                raise Invalid("str_replace needs old_str")
            return await edits.str_replace(resolved, old_str, new_str or "", expected_sha256)
        if command == "create":
            if file_text is None:
                raise Invalid("create needs file_text")
            return await edits.create(resolved, file_text, expected_sha256)
        text = insert_text if insert_text is not None else new_str
        if insert_line is None or text is None:
            raise Invalid("insert needs insert_line and insert_text")
        return await edits.insert(resolved, insert_line, text, expected_sha256)

    return Tool("fsTextEditor", DESCRIPTION, INPUT, OUTPUT, handler)
