"""MCP tools over the filesystem service: working directory, list, read, write, edit, delete."""

from __future__ import annotations

from typing import Annotated, Any

from .. import paths
from ..contract import Shape, doc
from ..errors import Invalid
from ..filesystem.files import parse_permissions
from ..filesystem.wire import Directory, FileWithContent
from .tools import Arguments, NoArguments, Services, Tool


class Listing(Shape, omit_defaults=False):
    directory: Directory


class FileText(FileWithContent, omit_defaults=False):
    """A file read by fsReadFile: its metadata (the time without fractions) and its text."""

    name: Annotated[str, doc("The path again, as given")]


class PathMessage(Shape, omit_defaults=False):
    path: Annotated[str, doc("The path acted on")]
    message: Annotated[str, doc("What was done")]


class Edited(Shape, omit_defaults=False):
    path: Annotated[str, doc("The file that was changed")]
    occurrences_replaced: Annotated[int, doc("How many occurrences were replaced")]


class WorkingDirectory(Shape, omit_defaults=False):
    path: Annotated[str, doc("Absolute path of the working directory")]


class DirectoryArgument(Arguments):
    path: Annotated[str, doc("The directory: absolute, or relative to the working directory")]


class FileArgument(Arguments):
    path: Annotated[str, doc("The file: absolute, or relative to the working directory")]


class WriteArguments(Arguments):
    path: Annotated[str, doc("The file or directory to create: absolute, or relative to the working directory")]
    content: Annotated[str, doc("The complete new content of the file (default: empty)")] = ""
    permissions: Annotated[str, doc("Mode bits in octal, e.g. 0755 (default 0644; an invalid value is ignored)")] = ""
    isDirectory: Annotated[bool, doc("Create a directory at path instead of a file")] = False


class EditArguments(Arguments):
    path: Annotated[str, doc("The file to change: absolute, or relative to the working directory")]
    oldString: Annotated[
        str,
        doc(
            "The exact text to replace, whitespace and indentation included; not empty. It must occur once in the "
            "file, unless replaceAll is set"
        ),
    ]
    newString: Annotated[str, doc("The text to put in its place; must differ from oldString; empty deletes it")]
    replaceAll: Annotated[bool, doc("Replace all the places oldString occurs, not just one (default false)")] = False


class DeleteArguments(Arguments):
    path: Annotated[str, doc("What to delete: absolute, or relative to the working directory")]
    isDirectory: Annotated[bool, doc("Set it if path is a directory (detected when absent)")] | None = None
    recursive: Annotated[bool, doc("Delete a directory together with everything in it (default false)")] = False


def without_fraction(timestamp: str) -> str:
    """RFC 3339 without the fractional seconds ("...05.123Z" -> "...05Z")."""
    head, dot, rest = timestamp.partition(".")
    if not dot:
        return timestamp
    zone = rest.lstrip("0123456789")
    return head + zone


def tools(services: Services) -> list[Tool]:
    settings, files = services.settings, services.files

    def resolve(value: str) -> paths.ResolvedPath:
        # MCP paths go straight to the filesystem: relative to WORKDIR, no `~`, no %2F rule.
        return paths.from_value(value, settings.workdir)

    async def working_directory(_: NoArguments) -> dict[str, Any]:
        return {"path": settings.workdir}

    async def list_directory(a: DirectoryArgument) -> dict[str, Any]:
        return {"directory": await files.list_directory(resolve(a.path))}

    async def read(a: FileArgument) -> dict[str, Any]:
        resolved = resolve(a.path)
        data = await files.read_text(resolved)
        data["name"] = resolved.display  # the original repeats the path here
        data["lastModified"] = without_fraction(data["lastModified"])  # as the original's MCP tool
        return data

    async def write(a: WriteArguments) -> dict[str, Any]:
        resolved = resolve(a.path)
        try:
            mode = parse_permissions(a.permissions, 0o644)
        except Invalid:
            mode = 0o644  # the original ignores a bad mode here
        if a.isDirectory:
            await files.make_directory(resolved, mode)
            return {"path": resolved.display, "message": "Directory created successfully"}
        await files.write_bytes(resolved, a.content.encode("utf-8", "replace"), mode)
        return {"path": resolved.display, "message": "File created/updated successfully"}

    async def edit(a: EditArguments) -> dict[str, Any]:
        resolved = resolve(a.path)
        count = await files.edit(resolved, a.oldString, a.newString, a.replaceAll)
        return {"path": resolved.display, "occurrencesReplaced": count}

    async def delete(a: DeleteArguments) -> dict[str, Any]:
        resolved = resolve(a.path)
        kind = await files.delete(resolved, a.recursive)
        message = "Directory deleted successfully" if kind == "directory" else "File deleted successfully"
        return {"path": resolved.display, "message": message}

    return [
        Tool(
            "fsGetWorkingDirectory",
            "Tell the working directory: the directory that relative paths given to the other tools start from.",
            NoArguments,
            WorkingDirectory,
            working_directory,
        ),
        Tool(
            "fsListDirectory",
            "List what a directory holds: its files (with size, mode, owner and time) and its subdirectories. Not "
            "recursive.",
            DirectoryArgument,
            Listing,
            list_directory,
        ),
        Tool(
            "fsReadFile",
            "Read a whole text file, with its metadata. For part of a long file, codegenReadFileRange is lighter.",
            FileArgument,
            FileText,
            read,
        ),
        Tool(
            "fsWriteFile",
            "Create a file, or replace all of an existing file's content, creating missing parent directories; with "
            "isDirectory, create a directory instead. To change part of a file that exists, fsEditFile is better: it "
            "sends only the changed text and cannot drop the rest by mistake.",
            WriteArguments,
            PathMessage,
            write,
        ),
        Tool(
            "fsEditFile",
            "Change part of an existing file by replacing an exact piece of its text; the preferred way to modify a "
            "file that exists, rather than rewriting it with fsWriteFile. oldString must occur exactly once (quote a "
            "few surrounding lines, whitespace included, to make it unique) unless replaceAll is set. If it is not "
            "found, the file differs from what you think: read it again and retry with its current text. The file "
            "keeps its mode.",
            EditArguments,
            Edited,
            edit,
        ),
        Tool(
            "fsDeleteFileOrDirectory",
            "Delete a file, or a directory. A directory that is not empty is deleted only with recursive.",
            DeleteArguments,
            PathMessage,
            delete,
        ),
    ]
