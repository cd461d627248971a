"""The search endpoints' wire shapes (see contract.py): find, fuzzy search, content search."""

from __future__ import annotations

from typing import Annotated, Literal

from ..contract import Shape, doc

# Directories find, fuzzy search and content search skip unless told otherwise.
DEFAULT_EXCLUDES = (
    "node_modules",
    "vendor",
    ".git",
    "dist",
    "build",
    "target",
    "__pycache__",
    ".venv",
    ".next",
    "coverage",
)
MAX_CONTEXT_LINES = 20
MAX_RESULTS_CAP = 1000
Kind = Literal["file", "directory"]

MaxResults = Annotated[
    int,
    doc(
        f"At most this many; a larger value is capped at {MAX_RESULTS_CAP}, 0 means all.",
        ge=0,
        le=MAX_RESULTS_CAP,
        extra={"clamp": True, "invalid": "invalid maxResults: {raw}"},  # the original's text (Go's Atoi)
    ),
]
ExcludeDirs = Annotated[
    list[str] | None,
    doc(
        "Comma-separated directory names to skip; replaces the default list "
        f"({', '.join(DEFAULT_EXCLUDES)}). Empty: the defaults; `,` skips none."
    ),
]
ExcludeHidden = Annotated[bool, doc("Skip names starting with `.` (only the text `true` is true; default true).")]


class FindQuery(Shape):
    # A plain string with its enum shown: any other value is the original's `invalid search type: <v>`.
    type: Annotated[str, doc("`file` or `directory`.", extra_json_schema={"enum": ["file", "directory"]})] = "file"
    patterns: Annotated[
        list[str] | None, doc("Comma-separated globs (`*.py,*.md`) the file names must match (Go's filepath.Match).")
    ] = None
    max_results: MaxResults = 20
    exclude_dirs: ExcludeDirs = None
    exclude_hidden: ExcludeHidden = True


class FindMatch(Shape, omit_defaults=False):
    path: Annotated[str, doc("Relative to the searched directory (`.` is the directory itself).")]
    type: Kind


class FindResponse(Shape, omit_defaults=False):
    matches: list[FindMatch]
    total: Annotated[int, doc("How many matches there are (after the cap).")]


class FuzzyQuery(Shape):
    query: Annotated[
        str | None, doc("The pattern; without it the path is both the root and the pattern (the original's quirk).")
    ] = None
    max_results: MaxResults = 20
    exclude_dirs: ExcludeDirs = None
    exclude_hidden: ExcludeHidden = True


class FuzzySearchMatch(Shape, omit_defaults=False):
    path: str
    score: Annotated[int, doc("Higher is better (fzf's scoring).")]
    type: Kind


class FuzzySearchResponse(Shape, omit_defaults=False):
    matches: list[FuzzySearchMatch]
    total: int


class ContentSearchQuery(Shape):
    query: Annotated[str, doc("Literal text, or a regular expression with `regex`.", min_length=1)]
    case_sensitive: bool = False
    regex: Annotated[bool, doc("`query` is a regular expression (Rust regex syntax).")] = False
    context_lines: Annotated[
        int,
        doc(
            f"Lines around each match, in its `context` (capped at {MAX_CONTEXT_LINES}).",
            ge=0,
            le=MAX_CONTEXT_LINES,
            extra={"clamp": True, "invalid": "invalid contextLines: {raw}"},
        ),
    ] = 0
    file_pattern: Annotated[str | None, doc("A glob the file names must match.")] = None
    exclude_dirs: ExcludeDirs = None
    max_results: MaxResults = 100


class ContentSearchMatch(Shape):
    path: Annotated[str, doc("Relative to the searched directory.")]
    line: Annotated[int, doc("1-based.")]
    column: Annotated[int, doc("1-based, in bytes.")]
    text: Annotated[str, doc("The matching line.")]
    context: Annotated[str | None, doc("The lines around the match, with `contextLines`.")] = None


class ContentSearchResponse(Shape):
    query: str
    matches: list[ContentSearchMatch]
    total: int
    timed_out: Annotated[
        bool | None, doc("Present (true) when the time limit stopped the search: the matches are partial.")
    ] = None
