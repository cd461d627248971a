"""The exact edits' wire shapes (see contract.py): the bodies of POST /edit/*, their answers
and their error answers. The service (edits/service.py) builds the answers as dicts; these
shapes describe them field for field.

The few checks a shape cannot say in the contract's one wording stay in the service, with
the words an agent acts on: an empty oldStr or insertText, a viewRange that is not one, an
insertLine past the end, an expectedSha256 that is not 64 hex digits.
"""

from __future__ import annotations

from typing import Annotated, Literal

from ..contract import Shape, doc

LineEnding = Annotated[
    Literal["lf", "crlf", "mixed"], doc("The file's line endings: lf, crlf, or mixed (both kinds in the file).")
]
PATH = "The file: absolute, or relative to the working directory (`~` and `//` as in every body path)."
EXPECTED_SHA256 = (
    "The sha256 of the version you read (64 hex digits, from an earlier answer): the edit is refused with 409 "
    "and nothing is written if the file is no longer that version."
)
SHA256 = "The sha256 of the file as it is now (lowercase hex): pass it as `expectedSha256` to the next edit."

# --- requests -----------------------------------------------------------------------------


class ViewRequest(Shape):
    path: Annotated[str, doc("The file or directory: absolute, or relative to the working directory.", min_length=1)]
    view_range: Annotated[
        list[int] | None,
        doc(
            "A file's lines to show: `[start, end]`, 1-based and inclusive; `end` -1 = to the end, an `end` past "
            "the last line is cut to it. Absent: the whole file. Not for a directory."
        ),
    ] = None


class StrReplaceRequest(Shape):
    path: Annotated[str, doc(PATH, min_length=1)]
    old_str: Annotated[
        str,
        doc(
            "The exact text to replace, whitespace and indentation included; not empty. It must occur exactly once "
            "(CRLF in the file reads as LF)."
        ),
    ]
    new_str: Annotated[str | None, doc("The text to put in its place (default: empty, which deletes oldStr).")] = None
    expected_sha256: Annotated[str | None, doc(EXPECTED_SHA256)] = None


class CreateRequest(Shape):
    path: Annotated[str, doc(PATH + " Missing parents are created.", min_length=1)]
    file_text: Annotated[
        str, doc("The whole content of the file. An existing file is replaced, keeping its mode and owner.")
    ]
    expected_sha256: Annotated[str | None, doc(EXPECTED_SHA256)] = None


class InsertRequest(Shape):
    path: Annotated[str, doc(PATH, min_length=1)]
    insert_line: Annotated[
        int, doc("The line after which to insert: 0 = at the top, up to the number of lines of the file.")
    ]
    insert_text: Annotated[str, doc("The text to insert, as whole lines; not empty.")]
    expected_sha256: Annotated[str | None, doc(EXPECTED_SHA256)] = None


# --- answers ------------------------------------------------------------------------------


class FileView(Shape, omit_defaults=False):
    """A file's lines, numbered as `cat -n` shows them."""

    path: Annotated[str, doc("The path, as given.")]
    type: Literal["file"]
    content: Annotated[str, doc("The lines shown, each `<number, 6 wide>\\t<line>`, joined by LF (CRLF read as LF).")]
    start_line: Annotated[int, doc("The first line shown.")]
    end_line: Annotated[int, doc("The last line shown.")]
    total_lines: Annotated[int, doc("The number of lines of the file (a last line without its newline counts).")]
    line_ending: LineEnding
    size: Annotated[int, doc("The file's size in bytes.")]
    sha256: Annotated[str, doc(SHA256)]


class ViewEntry(Shape, omit_defaults=False):
    path: Annotated[str, doc("Absolute path.")]
    type: Literal["file", "directory"]


class DirectoryView(Shape, omit_defaults=False):
    """A directory's entries two levels deep; hidden entries and `node_modules` left out."""

    path: Annotated[str, doc("The path, as given.")]
    type: Literal["directory"]
    content: Annotated[
        str, doc("The directory, then one entry a line (directories end in `/`), as an agent reads a listing.")
    ]
    entries: Annotated[list[ViewEntry], doc("The same entries, sorted by name, each directory before its content.")]
    truncated: Annotated[bool, doc("True when entries were left out past 2,000: view a subdirectory.")]


class Edited(Shape, omit_defaults=False):
    """The file after a change, and the changed lines."""

    path: Annotated[str, doc("The path, as given.")]
    sha256: Annotated[str, doc(SHA256)]
    size: Annotated[int, doc("The file's size in bytes now.")]
    line_ending: LineEnding
    snippet: Annotated[str, doc("The changed lines with 4 lines of context, numbered as a view shows them.")]
    snippet_start_line: Annotated[int, doc("The snippet's first line (0 when the file is empty).")]
    snippet_end_line: Annotated[int, doc("The snippet's last line.")]


class Created(Edited, omit_defaults=False):
    """The file written; its snippet is its first lines."""

    created: Annotated[bool, doc("True when the file did not exist.")]


# --- error answers ------------------------------------------------------------------------


class ConflictError(Shape, omit_defaults=False):
    """409: the file is no longer the version `expectedSha256` names; nothing was written."""

    error: Annotated[str, doc("What happened, with the current hash: view the file again.")]
    current_sha256: Annotated[str | None, doc("The file's sha256 now; null when it no longer exists.")]


class EditError(Shape):
    """422: the edit cannot be made on this file; nothing was written."""

    error: Annotated[
        str,
        doc(
            "Why: oldStr occurs zero or several times (with the count and the lines), a directory, a binary file "
            "(with the NUL byte's offset) or not UTF-8 (with the offset)."
        ),
    ]
    occurrences: Annotated[int | None, doc("str-replace: how many times oldStr occurs (0 or 2 and more).")] = None
    lines: Annotated[list[int] | None, doc("str-replace: the lines where it occurs (the first 50).")] = None
