"""The MCP tools: one per service call, with the original's names and shapes.

Each tool declares its arguments and its answer once, as types (`Arguments` subclasses
and wire shapes, see contract.py); from them come the schemas `tools/list` shows, and
the arguments a handler receives are decoded into that same type. The handlers live by
domain (`process_tools.py`, `file_tools.py`, `codegen_tools.py`) and call the same
services as the HTTP routes; `transport.py` speaks the protocol.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from ..config import Settings
from ..contract import inline_schema
from ..errors import ApiError, os_error_text
from ..filesystem.files import Files
from ..lazy import OnFirstUse
from ..process.supervisor import Supervisor

if TYPE_CHECKING:
    from ..codegen.service import Codegen
    from ..edits.service import Edits
    from ..search.content import ContentSearch
    from ..sessions.service import Sessions
    from ..system.metrics import Metrics

Handler = Callable[[Any], Awaitable[dict[str, Any]]]


class Arguments(msgspec.Struct, forbid_unknown_fields=True):
    """Base of a tool's arguments: closed (an unknown argument is an error, as go-sdk's
    schemas say); each field's name is the argument's name."""


class NoArguments(Arguments):
    pass


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    arguments: type[Arguments]
    output: Any  # a wire shape
    handler: Handler
    input_schema: dict[str, Any] = field(init=False)
    output_schema: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_schema", tool_schema(self.arguments))
        object.__setattr__(self, "output_schema", tool_schema(self.output))


def tool_schema(shape: Any) -> dict[str, Any]:
    """A shape's JSON Schema as MCP clients and go-sdk expect it: self-contained, a
    nullable simple type written `"type": ["null", "string"]`, objects closed."""
    return _simplified(inline_schema(shape))


def _simplified(node: Any) -> Any:
    if isinstance(node, list):
        return [_simplified(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _simplified(v) for k, v in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        others = [o for o in options if o != {"type": "null"}]
        if len(others) == 1:
            merged = {k: v for k, v in node.items() if k != "anyOf"}
            other = dict(others[0])
            kind = other.pop("type", None)
            if isinstance(kind, str):
                merged = {**other, **merged, "type": ["null", kind]}
                node = merged
    if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    if node.get("default", 0) is None:
        del node["default"]
    return node


@dataclass
class Services:
    """What the tools call. The less used services are built on a tool's first call that
    needs them (as on their first HTTP call): listing the tools builds none."""

    settings: Settings
    supervisor: Supervisor
    files: Files
    content: OnFirstUse[ContentSearch]
    codegen: OnFirstUse[Codegen]
    codegen_enabled: bool  # decided at start-up, as the original registers them
    # Beyond the original (issue 16): exact edits and metrics; their tools are left out without them.
    edits: OnFirstUse[Edits] | None = None
    metrics: OnFirstUse[Metrics] | None = None
    sessions: OnFirstUse[Sessions] | None = None  # shell sessions: the `bash` tool


class Tools:
    """Builds the tool list against the daemon's services."""

    def __init__(
        self,
        settings: Settings,
        supervisor: Supervisor,
        files: Files,
        content: OnFirstUse[ContentSearch],
        codegen: OnFirstUse[Codegen],
        codegen_enabled: bool,
        edits: OnFirstUse[Edits] | None = None,
        metrics: OnFirstUse[Metrics] | None = None,
        sessions: OnFirstUse[Sessions] | None = None,
    ) -> None:
        self.services = Services(
            settings, supervisor, files, content, codegen, codegen_enabled, edits, metrics, sessions
        )

    def all(self) -> list[Tool]:
        from . import codegen_tools, edit_tools, file_tools, metrics_tools, process_tools, session_tools

        return [
            *process_tools.tools(self.services),
            *file_tools.tools(self.services),
            *codegen_tools.tools(self.services),
            *edit_tools.tools(self.services),
            *metrics_tools.tools(self.services),
            *session_tools.tools(self.services),
        ]


def decode_arguments(tool: Tool, arguments: dict[str, Any]) -> Any:
    """Arguments that passed the schema check, as the tool's type."""
    return msgspec.convert(arguments, tool.arguments)


async def call(tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    """Run a tool; our typed errors and OS errors come back as plain messages."""
    try:
        return await tool.handler(decode_arguments(tool, arguments))
    except ApiError as e:
        raise ToolFailure(e.message) from None
    except TimeoutError as e:
        raise ToolFailure(str(e) or "timed out") from None
    except OSError as e:  # "/x: no such file or directory", not Python's "[Errno 2] ...: '/x'"
        raise ToolFailure(os_error_text(e)) from None


class ToolFailure(Exception):
    """A tool ran and failed: reported as an isError result, not a protocol error."""
