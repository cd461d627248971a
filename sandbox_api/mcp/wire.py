"""The MCP endpoint's wire shapes (see contract.py): the JSON-RPC 2.0 envelopes of
`POST /mcp`. The transport checks them itself (its errors are JSON-RPC errors); these
describe them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, UnsetType

from ..contract import Shape, doc

RequestId = Annotated[str | int, doc("Absent for a notification.")]


class JsonRpcRequest(Shape):
    """A request, or a notification (no `id`)."""

    jsonrpc: Literal["2.0"]
    method: Annotated[str, doc("`initialize`, `tools/list`, `tools/call`, `ping`, a notification...")]
    id: RequestId | UnsetType = UNSET
    params: dict[str, Any] | None = None


class JsonRpcError(Shape):
    code: Annotated[int, doc("-32700 parse error, -32600 invalid request, -32601 no such method, -32602 bad params.")]
    message: str
    data: Any = None


class JsonRpcResponse(Shape):
    jsonrpc: Literal["2.0"]
    id: Annotated[str | int | None, doc("The request's; null when it could not be read.")] = None
    result: dict[str, Any] | None = None
    error: JsonRpcError | None = None
