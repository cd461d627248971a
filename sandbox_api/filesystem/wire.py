"""The filesystem API's wire shapes, declared once (see contract.py): HTTP validation, the
OpenAPI document and the MCP tools' output all use these.

The answers are built as dicts by the services (entries.py, files.py, uploads.py); these
shapes describe them field for field.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Meta, UnsetType

from ..contract import Shape, doc
from .tree import TREE_MAX_BYTES, TREE_MAX_FILES

# An octal mode as text. The pattern is only shown: a value that breaks it is refused by
# parse_permissions, with the original's `invalid permissions format ...` message.
Permissions = Annotated[str, Meta(extra_json_schema={"pattern": "^[0-7]*$"})]
# Multipart form fields that carry a file's bytes.
Binary = Annotated[str, Meta(extra_json_schema={"format": "binary"})]
DATE_TIME = {"format": "date-time"}

# --- answers ------------------------------------------------------------------------------


class File(Shape, omit_defaults=False):
    """A file (anything but a directory: symlinks, devices, FIFOs too) and its metadata."""

    path: Annotated[str, doc("The file's path, as the request spelled it (relative ones stay relative).")]
    name: Annotated[str, doc("Its base name.")]
    permissions: Annotated[str, doc("Go's FileMode in octal (`644`; `20000000755` for a directory).")]
    size: Annotated[int, doc("Size in bytes.")]
    last_modified: Annotated[
        str, doc("Last modification time (RFC 3339 with nanoseconds).", extra_json_schema=DATE_TIME)
    ]
    owner: Annotated[str, doc("Owning user (the uid when it has no name).")]
    group: Annotated[str, doc("Owning group (the gid when it has no name).")]


class FileWithContent(File):
    """A file read as JSON: its metadata and its text."""

    content: Annotated[str, doc("The file's bytes as UTF-8 text; invalid bytes become U+FFFD.")]


class TreeFile(File):
    """A file of a recursive tree."""

    content: Annotated[str, doc("With `content=true`, for regular files (and links to them).")] | UnsetType = UNSET


class Subdirectory(Shape, omit_defaults=False):
    path: Annotated[str, doc("The subdirectory's path.")]
    name: Annotated[str, doc("Its base name.")]


class Directory(Shape, omit_defaults=False):
    """A directory and what it holds, one level."""

    path: Annotated[str, doc("The directory's path, as the request spelled it.")]
    name: Annotated[str, doc("Its base name.")]
    files: Annotated[list[File], doc("Everything in it that is not a directory, sorted by name.")]
    subdirectories: Annotated[list[Subdirectory], doc("Its direct subdirectories, sorted by name.")]


class DirectoryTree(Shape, omit_defaults=False):
    """A directory and every level below it (`GET /filesystem/tree/{path}?recursive=true`)."""

    path: Annotated[str, doc("The tree's root.")]
    name: Annotated[str, doc("The root's base name.")]
    files: Annotated[list[TreeFile], doc("Every file below the root (full paths), depth first, sorted by name.")]
    subdirectories: Annotated[list[Subdirectory], doc("Every directory below the root (full paths).")]
    recursive: Annotated[bool, doc("Always true: `files` and `subdirectories` hold every level.")]


class CopyResponse(Shape, omit_defaults=False):
    message: str
    source: Annotated[str, doc("The source, as given.")]
    destination: Annotated[str, doc("The final target (inside `destination` when that is a directory).")]


class MultipartInitiateResponse(Shape, omit_defaults=False):
    upload_id: Annotated[str, doc("The session's id (a UUID).")]
    path: Annotated[str, doc("The absolute destination.")]


class MultipartPartResponse(Shape, omit_defaults=False):
    part_number: int
    etag: Annotated[str, doc("MD5 of the part, lowercase hex.")]
    size: Annotated[int, doc("Bytes stored.")]


class UploadedPart(MultipartPartResponse):
    uploaded_at: Annotated[str, doc("When it was stored (RFC 3339).", extra_json_schema=DATE_TIME)]


class MultipartListPartsResponse(Shape, omit_defaults=False):
    upload_id: str
    parts: Annotated[list[UploadedPart], doc("Sorted by part number.")]


class MultipartUpload(Shape, omit_defaults=False):
    """An upload session."""

    upload_id: str
    path: Annotated[str, doc("The absolute destination.")]
    permissions: Annotated[int, doc("Mode of the final file, as a number (420 for 0644).")]
    initiated_at: Annotated[str, doc("When it was started (RFC 3339).", extra_json_schema=DATE_TIME)]
    parts: Annotated[dict[str, UploadedPart], doc("Part number (decimal) -> part.")]


class MultipartListUploadsResponse(Shape, omit_defaults=False):
    uploads: Annotated[list[MultipartUpload], doc("In no particular order.")]


# --- requests -----------------------------------------------------------------------------


class FileRequest(Shape):
    """`PUT /filesystem/{path}` as JSON (whatever the Content-Type, but multipart and raw bytes)."""

    content: Annotated[str | None, doc("The file's text, written as UTF-8 (default: empty).")] = None
    is_directory: Annotated[bool | None, doc("Create a directory (and its parents) instead; `content` is ignored.")] = (
        None
    )
    permissions: Annotated[
        Permissions | None, doc("Octal mode of a new file or directory (default `0644`, `0755` for a directory).")
    ] = None


class FileUpload(Shape):
    """`PUT /filesystem/{path}` as `multipart/form-data`."""

    file: Annotated[Binary, doc("The content: the first `file` part with a filename.")]
    permissions: Annotated[Permissions | None, doc("Octal mode (`0644`), before or after the file.")] = None


class TreeRequest(Shape):
    files: Annotated[
        dict[str, str] | None,
        doc("Path relative to the root (no `..` component) -> its text. Missing or null: no files."),
    ] = None


class CopyRequest(Shape):
    source: Annotated[str, doc("What to copy: relative to WORKDIR unless absolute.", min_length=1)]
    destination: Annotated[
        str, doc("Where: an existing directory receives the source inside it (`cp -r`).", min_length=1)
    ]
    no_overwrite: Annotated[bool | None, doc("409 `FILE_ALREADY_EXISTS` rather than replace anything that exists.")] = (
        None
    )


class MultipartInitiateRequest(Shape):
    """Optional: a missing or undecodable body (or a `permissions` that is not a string)
    means the default mode."""

    permissions: Annotated[Permissions | None, doc("Octal mode of the final file (default `0644`).")] = None


class PartUpload(Shape):
    """`PUT /filesystem-multipart/{uploadId}/part` as `multipart/form-data`."""

    file: Annotated[Binary, doc("The part's bytes: the first part named `file`.")]


class CompletedPart(Shape):
    part_number: Annotated[int, doc("A part number sent with `part`.", ge=1, le=10000)]
    etag: Annotated[str, doc("The etag `part` answered (surrounding quotes are ignored).")]


class MultipartCompleteRequest(Shape):
    parts: Annotated[
        list[CompletedPart] | None,
        doc(
            "The parts to assemble, in any order (they are sorted); each etag must match, and parts not listed are "
            "dropped. At least one (missing or empty: 400 `at least one part is required`, as the original)."
        ),
    ] = None


# --- queries ------------------------------------------------------------------------------


class ReadQuery(Shape):
    download: Annotated[bool, doc("The raw bytes rather than JSON.")] = False


class WriteQuery(Shape):
    permissions: Annotated[Permissions | None, doc("Octal mode of a raw (`application/octet-stream`) upload.")] = None


class DeleteQuery(Shape):
    recursive: Annotated[bool, doc("Delete a non-empty directory and everything in it.")] = False


class TreeQuery(Shape):
    recursive: Annotated[bool, doc("Every level (full paths) rather than one.")] = False
    content: Annotated[bool, doc("With `recursive`: include each regular file's content.")] = False
    patterns: Annotated[list[str] | None, doc("With `recursive`: name globs files must match (any of them).")] = None
    exclude_dirs: Annotated[list[str] | None, doc("With `recursive`: directory names to skip.")] = None
    exclude_hidden: Annotated[bool, doc("With `recursive`: skip names starting with `.`.")] = False
    max_files: Annotated[int, doc("With `recursive`: over this many files, 422 (0: the default).", ge=0)] = (
        TREE_MAX_FILES
    )
    max_bytes: Annotated[int, doc("With `recursive`: over this much content, 422 (0: the default).", ge=0)] = (
        TREE_MAX_BYTES
    )


class PartQuery(Shape):
    # The range is only shown: Uploads.check_part_number refuses others with the original's text.
    part_number: Annotated[
        int,
        doc(
            "1 to 10000.",
            extra_json_schema={"minimum": 1, "maximum": 10000},
            extra={"missing": "partNumber is required"},  # the original's text for this one
        ),
    ]
