"""MCP tool over the exact edits: one tool, `fsTextEditor`, with a `command`.

One tool with `command` and the public tool's snake_case argument names (`view_range`,
`old_str`, `new_str`, `file_text`, `insert_line`, `insert_text`) because that is the shape
models are trained on (Anthropic's `str_replace_based_edit_tool`, OpenHands' and
SWE-agent's `str_replace_editor`): an agent uses it right without reading a schema.
`new_str` is also taken as the text of `insert`, as the tool's earlier versions had it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta

from .. import paths
from ..contract import Shape, doc
from ..edits.wire import LineEnding, ViewEntry
from ..errors import Invalid
from .tools import Arguments, Services, Tool

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


class TextEditorArguments(Arguments):
    # A string with the enum written out, so that the schema lists the commands in this order (a
    # Literal's is sorted); the schema check of every tool call refuses another value.
    command: Annotated[
        str, Meta(description="What to do: view, str_replace, create or insert", extra_json_schema={"enum": COMMANDS})
    ]
    path: Annotated[str, doc("The file or directory: absolute, or relative to the working directory")]
    view_range: Annotated[
        list[int] | None, doc("view: the lines to show, [start, end] 1-based inclusive; end -1 means to the end")
    ] = None
    old_str: Annotated[
        str | None, doc("str_replace: the exact text to replace, whitespace included; must occur exactly once")
    ] = None
    new_str: Annotated[
        str | None, doc("str_replace: the text to put instead (default: empty, which deletes old_str)")
    ] = None
    file_text: Annotated[str | None, doc("create: the whole content of the file")] = None
    insert_line: Annotated[int | None, doc("insert: the line after which to insert (0: at the top of the file)")] = None
    insert_text: Annotated[str | None, doc("insert: the text to insert, as whole lines")] = None
    expected_sha256: Annotated[
        str | None,
        doc(
            "The file's sha256 as you last saw it (from an earlier answer): the change is refused if the file is "
            "no longer that version"
        ),
    ] = None


class TextEditorResult(Shape):
    """What a command answers: `path` always, then the fields of a view or of a change."""

    path: Annotated[str, doc("The path, as given")]
    type: Annotated[Literal["file", "directory"] | None, doc("view: file or directory")] = None
    content: Annotated[
        str | None, doc("view: the numbered lines of the file, or the directory's entries one a line")
    ] = None
    start_line: Annotated[int | None, doc("view: the first line shown")] = None
    end_line: Annotated[int | None, doc("view: the last line shown")] = None
    total_lines: Annotated[int | None, doc("view: the number of lines of the file")] = None
    entries: Annotated[list[ViewEntry] | None, doc("view of a directory: its entries two levels deep")] = None
    truncated: Annotated[bool | None, doc("view of a directory: true when entries were left out past 2,000")] = None
    created: Annotated[bool | None, doc("create: true when the file did not exist")] = None
    snippet: Annotated[str | None, doc("After a change: the changed lines and 4 lines around them, numbered")] = None
    snippet_start_line: Annotated[int | None, doc("The line number of the snippet's first line")] = None
    snippet_end_line: Annotated[int | None, doc("The line number of the snippet's last line")] = None
    line_ending: LineEnding | None = None
    size: Annotated[int | None, doc("The file's size in bytes")] = None
    sha256: Annotated[str | None, doc("The file's sha256 now: pass it as expected_sha256 to the next edit")] = None


def tools(services: Services) -> list[Tool]:
    edits, workdir = services.edits, services.settings.workdir
    if edits is None:
        return []

    async def edit(a: TextEditorArguments) -> dict[str, Any]:
        resolved = paths.from_value(a.path, workdir)  # as every MCP path: relative to WORKDIR, no `~`
        if a.command == "view":
            return await edits().view(resolved, a.view_range)
        if a.command == "str_replace":
            if a.old_str is None:
                raise Invalid("str_replace needs old_str")
            return await edits().str_replace(resolved, a.old_str, a.new_str or "", a.expected_sha256)
        if a.command == "create":
            if a.file_text is None:
                raise Invalid("create needs file_text")
            return await edits().create(resolved, a.file_text, a.expected_sha256)
        text = a.insert_text if a.insert_text is not None else a.new_str
        if a.insert_line is None or text is None:
            raise Invalid("insert needs insert_line and insert_text")
        return await edits().insert(resolved, a.insert_line, text, a.expected_sha256)

    return [Tool("fsTextEditor", DESCRIPTION, TextEditorArguments, TextEditorResult, edit)]
