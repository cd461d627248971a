"""How wire shapes are declared, and the one way they are decoded and described.

Every request body, query and response is a msgspec `Struct` declared once, next to the
service it belongs to (`process/wire.py`, `filesystem/wire.py`, ...). From that one
declaration come:

- validation: `decode_body` (a JSON body) and `decode_query` (URL query parameters), each
  failing with `Invalid` and one wording (`invalid request body: field timeout must be an
  integer >= 0`);
- the OpenAPI components (`components`, used by `http/openapi.py`);
- the MCP input and output schemas (`inline_schema`, used by `mcp/tools.py`).

No aiohttp here: services and MCP tools use these types too.

Field conventions, so that the original's clients keep working:
- unknown keys are ignored and an explicit `null` is the same as an absent key (Go's
  decoder does both), so optional fields are declared `T | None = None`;
- query parameters keep the original's lenient rules: a boolean is true only when it is
  the text `true` (absent: its default), an integer must be written as one, a list is
  comma-separated; `Meta(ge=..., le=...)` bounds are checked, and a field whose Meta
  carries `extra={"clamp": True}` is capped at its `le` instead of refused; an empty
  number or list is absent, and a required parameter absent or empty is refused with
  the original's `<name> parameter is required` (or its own text, `Meta(extra={"missing": ...})`);
  a refused number says what is wrong with it, or only `Meta(extra={"invalid": ...})` with
  `{raw}` in it (Go's Atoi failing says only `invalid maxResults: <raw>`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import msgspec
from msgspec import Meta

from .errors import Invalid

__all__ = ["Message", "Meta", "Shape", "Success", "components", "decode_body", "decode_query", "doc", "inline_schema"]

T = TypeVar("T")
Schema = dict[str, Any]


class Shape(msgspec.Struct, rename="camel", omit_defaults=True):
    """Base of every wire shape: camelCase on the wire, unknown keys ignored, defaults
    left out of answers."""


class Message(Shape, omit_defaults=False):
    message: str


class Success(Shape, omit_defaults=False):
    path: str
    message: str


def doc(description: str, **constraints: Any) -> Meta:
    """A field's description (and its bounds), as the schema will show it."""
    return Meta(description=description, **constraints)


# --- decoding ---------------------------------------------------------------------------

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_DECODERS: dict[type, msgspec.json.Decoder[Any]] = {}


def decode_body(raw: bytes, shape: type[T], prefix: str = "invalid request body") -> T:
    """A JSON body as `shape`, or `Invalid` saying which field is wrong and why."""
    if not raw.strip():
        raise Invalid(f"{prefix}: EOF")
    decoder = _DECODERS.get(shape)
    if decoder is None:
        decoder = _DECODERS[shape] = msgspec.json.Decoder(shape)
    try:
        return decoder.decode(raw)
    except RecursionError:  # msgspec's own nesting limit: a 400, not a 500
        raise Invalid(f"{prefix}: JSON nested too deeply") from None
    except msgspec.ValidationError as e:
        _check_depth(raw, prefix)
        raise Invalid(f"{prefix}: {explain(str(e))}") from None
    except msgspec.DecodeError as e:
        if not _SURROGATE_ESCAPE.search(raw):
            raise Invalid(f"{prefix}: {_decode_error(str(e))}") from None
    # An escaped lone surrogate ("\ud800"): Go reads it as U+FFFD, msgspec refuses it.
    try:
        data = decode_json(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise Invalid(f"{prefix}: {e}") from None
    return convert(data, shape, prefix)


def _check_depth(raw: bytes, prefix: str) -> None:
    """A typed decode stops at the first value of the wrong type, but too deep a document
    is refused as such whatever its type (`[[[...` for an object), as before."""
    try:
        msgspec.json.decode(raw)
    except RecursionError:
        raise Invalid(f"{prefix}: JSON nested too deeply") from None
    except msgspec.DecodeError:
        pass  # the type error is the answer


def convert(data: Any, shape: type[T], prefix: str = "invalid request body") -> T:
    """Already-decoded JSON (a dict) as `shape`."""
    try:
        return msgspec.convert(data, shape)
    except msgspec.ValidationError as e:
        raise Invalid(f"{prefix}: {explain(str(e))}") from None


def decode_json(raw: bytes | str, **options: Any) -> Any:
    """`json.loads(raw, **options)` as Go decodes: an escaped lone surrogate is U+FFFD.
    ValueError too for nesting deeper than the interpreter's recursion allows (~900)."""
    try:
        data = json.loads(raw, **options)
        text = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
        return _without_lone_surrogates(data) if _SURROGATE_ESCAPE.search(text) else data
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(value: Any) -> Any:
    """Go's JSON decoding: an escaped lone surrogate (`"\\ud800"`) is U+FFFD. Python keeps
    it, and no OS call (paths, argv, environment) can encode it."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    return value


def _decode_error(message: str) -> str:
    if message.startswith("Input data was truncated"):
        return "unexpected end of JSON input"
    return message.replace("JSON is malformed: ", "invalid JSON: ")


_KINDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "object": "an object",
    "array": "an array",
    "null": "null",
}
_GOT = {**_KINDS, "int": "a number", "float": "a number"}
_EXPECTED = re.compile(r"^Expected `([^`]+)`(.*?)(?:, got `([^`]+)`)?(?: - at `\$(.*)`)?$")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`(?: - at `\$(.*)`)?$")


def explain(message: str) -> str:
    """msgspec's validation message in our words: `field timeout must be an integer >= 0,
    got ...`."""
    missing = _MISSING.match(message)
    if missing:
        where = _field_path(missing.group(2) or "")
        return f"{where + '.' if where else ''}{missing.group(1)} is required"
    expected = _EXPECTED.match(message)
    if not expected:
        return message
    wanted, bounds, got, at = expected.groups()
    kinds = [k.strip() for k in wanted.split("|") if k.strip() != "null"]
    wanted_text = " or ".join(_KINDS.get(k, k) for k in kinds) or "null"
    bounds = bounds.strip()
    if bounds.startswith("of length >= 1") and kinds == ["str"]:
        wanted_text, bounds = "a non-empty string", ""
    text = f"must be {wanted_text}{' ' + bounds if bounds else ''}"
    if got:
        text += f", got {_GOT.get(got, got)}"
    where = _field_path(at or "")
    return f"field {where} {text}" if where else f"expected {wanted_text}{', got ' + _GOT.get(got, got) if got else ''}"


def _field_path(at: str) -> str:
    return at.lstrip(".").replace("[...]", "[]")


def decode_query(query: Mapping[str, str], shape: type[T]) -> T:
    """URL query parameters as `shape`, with the original's lenient rules (module doc)."""
    values: dict[str, Any] = {}
    for name, (kind, meta, required) in _query_fields(shape).items():
        raw = query.get(name)
        # An empty number, list or required value is an absent one, as Go's `c.Query(x) != ""`
        # checks read it (`excludeDirs=` keeps the default list; `excludeDirs=,` is empty).
        if raw is None or (raw == "" and (required or kind in (int, float, list))):
            if required:
                missing = meta.extra.get("missing") if meta is not None and meta.extra else None
                raise Invalid(missing or f"{name} parameter is required")
            continue
        if kind is bool:
            values[name] = raw == "true"
        elif kind is int or kind is float:
            values[name] = _number(name, raw, kind, meta)
        elif kind is list:
            values[name] = [item.strip() for item in raw.split(",") if item.strip()]
        else:
            values[name] = raw
    try:
        return msgspec.convert(values, shape)
    except msgspec.ValidationError as e:  # a constraint decode_query does not check itself (a Literal...)
        raise Invalid(f"invalid query: {explain(str(e))}") from None


_GO_INT = re.compile(r"[+-]?[0-9]+")  # strconv.Atoi: ASCII digits only, nothing around them


def _number(name: str, raw: str, kind: type, meta: Meta | None) -> int | float:
    extra = (meta.extra if meta is not None else None) or {}

    def refused(why: str) -> Invalid:
        template = extra.get("invalid")
        return Invalid(template.format(raw=raw) if template else f"invalid {name}: {why}")

    try:
        if kind is int and not _GO_INT.fullmatch(raw):
            raise ValueError
        value: int | float = kind(raw)
    except ValueError:
        raise refused(f"{raw!r} is not {'an integer' if kind is int else 'a number'}") from None
    low = None if meta is None else meta.ge
    high = None if meta is None else meta.le
    if low is not None and value < low:
        raise refused(f"{raw} is less than {low}")
    if high is not None and value > high:
        if extra.get("clamp"):
            return high
        raise refused(f"{raw} is more than {high}")
    return value


_QUERY_FIELDS: dict[type, dict[str, tuple[type, Meta | None, bool]]] = {}


def _query_fields(shape: type) -> dict[str, tuple[type, Meta | None, bool]]:
    """wire name -> (bool/int/float/list/str, its Meta, required) of each field of a query shape."""
    fields = _QUERY_FIELDS.get(shape)
    if fields is None:
        fields = {}
        hints = get_type_hints(shape, include_extras=True)
        info = msgspec.structs.fields(shape)
        for field in info:
            kind, meta = _plain(hints[field.name])
            fields[field.encode_name] = (kind, meta, field.required)
        _QUERY_FIELDS[shape] = fields
    return fields


def _plain(hint: Any) -> tuple[type, Meta | None]:
    """`Annotated[int | None, Meta(...)]` -> (int, Meta)."""
    meta = None
    while True:
        args = get_args(hint)
        if hasattr(hint, "__metadata__"):
            meta = next((m for m in hint.__metadata__ if isinstance(m, Meta)), meta)
            hint = args[0]
        elif get_origin(hint) in (Union, type(int | None)):
            hint = next(a for a in args if a is not type(None))
        elif get_origin(hint) is list:
            return list, meta
        else:
            return hint, meta


# --- schemas ----------------------------------------------------------------------------


def components(shapes: Iterable[Any], ref_prefix: str = "#/components/schemas/") -> tuple[list[Schema], Schema]:
    """The schemas of `shapes` (each a `$ref` where it is a Struct) and the named
    components they refer to."""
    schemas, defs = msgspec.json.schema_components(tuple(shapes), ref_template=ref_prefix + "{name}")
    return list(schemas), defs


def inline_schema(shape: Any) -> Schema:
    """The JSON Schema of `shape` with every `$ref` replaced by what it names: MCP
    clients want a tool's schema as one self-contained object."""
    root = msgspec.json.schema(shape)
    defs = root.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = dict(inline(defs[ref.removeprefix("#/$defs/")]))
                target.pop("title", None)
                return {**target, **{k: inline(v) for k, v in node.items() if k != "$ref"}}
            return {k: inline(v) for k, v in node.items() if k != "title"}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    result: Schema = inline(root)
    return result
