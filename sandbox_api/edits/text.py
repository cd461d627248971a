"""The text side of exact edits: line endings, line numbers, matching, numbered snippets.

Pure functions of strings; no I/O. An edit works on the file's text with its line endings
normalised (CRLF read as LF), so that text an agent copied from a view matches; the result
is spliced into the file's own text, so every line outside the change keeps its ending
byte for byte (a mixed file stays mixed), and the new lines take the file's usual ending.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

SNIPPET_CONTEXT = 4  # lines shown before and after a change
MAX_LISTED_LINES = 50  # line numbers named in a "several occurrences" error


class EditRefused(ValueError):
    """The edit cannot be made as asked (the caller maps it to 400/422)."""


class Occurrences(EditRefused):
    """old_str occurs zero or several times."""

    def __init__(self, message: str, count: int, lines: list[int]) -> None:
        super().__init__(message)
        self.count = count
        self.lines = lines


def lf(text: str) -> str:
    # A one-character search first: it runs at memchr speed, a two-character one does not.
    return text.replace("\r\n", "\n") if "\r" in text else text


@dataclass
class FileText:
    """A file's text and the same with LF endings, with positions mapped between them."""

    raw: str
    text: str  # raw with every CRLF read as LF
    newline: str  # what new lines get: "\r\n" when CRLF is the file's usual ending
    line_ending: str  # what the file uses: "lf", "crlf" or "mixed"
    _crlf_at: list[int] | None = None  # positions in `text` of the LFs that were CRLF

    @classmethod
    def of(cls, raw: str) -> FileText:
        crlf = raw.count("\r\n") if "\r" in raw else 0
        if not crlf:
            return cls(raw, raw, "\n", "lf")
        lone = raw.count("\n") - crlf
        return cls(raw, lf(raw), "\r\n" if crlf >= lone else "\n", "mixed" if lone else "crlf")

    def raw_offset(self, position: int) -> int:
        """The position in `raw` of `position` in `text` (never between a CR and its LF)."""
        if self.raw is self.text:
            return position
        if self._crlf_at is None:
            found, at, start = [], 0, 0
            while (i := self.raw.find("\r\n", start)) >= 0:
                found.append(i - at)  # the LF's position in `text`
                at += 1
                start = i + 2
            self._crlf_at = found
        return position + bisect.bisect_left(self._crlf_at, position)

    def splice(self, start: int, end: int, new: str) -> str:
        """`raw` with text[start:end] replaced by `new` (LF endings, given the file's own)."""
        if self.raw is self.text:
            return self.raw[:start] + new + self.raw[end:]
        if self.line_ending == "crlf":  # every line CRLF: the quick way gives the same bytes
            return (self.text[:start] + new + self.text[end:]).replace("\n", "\r\n")
        if self.newline != "\n":
            new = new.replace("\n", self.newline)
        return self.raw[: self.raw_offset(start)] + new + self.raw[self.raw_offset(end) :]


def line_count(text: str) -> int:
    """Lines of an LF text: a final line without its newline counts, an empty text has none."""
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def line_of(text: str, position: int) -> int:
    """The 1-based line number of `position`."""
    return text.count("\n", 0, position) + 1


def line_start(text: str, line: int) -> int:
    """The position where 1-based line `line` starts (len(text) past the last line)."""
    if line <= 1:
        return 0
    head = text.split("\n", line - 1)
    if len(head) < line:
        return len(text)
    return len(text) - len(head[-1])


def numbered(text: str, first: int, last: int) -> str:
    """Lines first..last (1-based, inclusive) of an LF text, as `cat -n` shows them."""
    if last < first:
        return ""
    start = line_start(text, first)
    lines = text[start:].split("\n", last - first + 1)[: last - first + 1]
    return "\n".join(f"{first + i:6d}\t{line}" for i, line in enumerate(lines))


def snippet(text: str, first: int, last: int) -> tuple[str, int, int]:
    """A numbered snippet of the changed lines first..last with context around them, and
    the range it shows."""
    total = line_count(text)
    start = max(1, first - SNIPPET_CONTEXT)
    end = min(total, max(last, first) + SNIPPET_CONTEXT)
    return numbered(text, start, end), start, end


def find_unique(text: str, old: str, shown_path: str) -> int:
    """The position of the one occurrence of `old` in `text`; Occurrences otherwise."""
    first = text.find(old)
    if first < 0:
        raise Occurrences(
            f"old_str does not occur in {shown_path}: no replacement was made. It must match the file exactly, "
            "whitespace and indentation included: view the file again and copy the text from it",
            0,
            [],
        )
    second = text.find(old, first + 1)
    if second < 0:
        return first
    positions = [first, second]  # overlapping occurrences ("aa" twice in "aaa") count: either could be meant
    while len(positions) <= MAX_LISTED_LINES and (at := text.find(old, positions[-1] + 1)) >= 0:
        positions.append(at)
    count = len(positions) if len(positions) <= MAX_LISTED_LINES else max(text.count(old), len(positions))
    lines: list[int] = []
    line, previous = 1, 0
    for at in positions[:MAX_LISTED_LINES]:
        line += text.count("\n", previous, at)  # counted piece by piece: one pass over the text
        previous = at
        if not lines or lines[-1] != line:
            lines.append(line)
    shown = ", ".join(map(str, lines)) + (", ..." if len(positions) > MAX_LISTED_LINES else "")
    raise Occurrences(
        f"old_str occurs {count} times in {shown_path}, on lines {shown}: no replacement was made. "
        "Include more surrounding lines in old_str to make it unique",
        count,
        lines,
    )


def view_range(total: int, wanted: list[int] | None) -> tuple[int, int]:
    """The lines a view shows: [start, end] 1-based inclusive, end -1 meaning the last
    line; an end past the last line is cut to it. EditRefused when the range is not one."""
    if wanted is None:
        return 1, total
    if len(wanted) != 2:
        raise EditRefused("view_range must be two line numbers: [start, end] (end -1: to the end of the file)")
    start, end = wanted
    if start < 1:
        raise EditRefused(f"view_range start {start} must be 1 or more")
    if start > max(total, 1):
        raise EditRefused(f"view_range start {start} is past the end of the file, which has {total} lines")
    if end == -1 or end > total:
        end = total
    elif end < start:
        raise EditRefused(f"view_range end {end} is before its start {start} (use -1 for the end of the file)")
    return start, end
