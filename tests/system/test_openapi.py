"""The OpenAPI document describes exactly the routes the app serves, and is valid.

Rules of the comparison (see sandbox_api/openapi.py):
- HEAD routes are not documented (HEAD twins answer an empty 200);
- a route that takes any method (the port proxy) is documented with every method of
  `PROXY_METHODS`;
- a prefix route (`PrefixRouter`, matched on the decoded path) at `/p` is documented as
  `/p/{param}`;
- path parameter names do not matter (`/process/{identifier}` == `/process/{id}`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import jsonschema
import pytest
from aiohttp import hdrs

from sandbox_api.app import build_app
from sandbox_api.http.prefix_routes import PREFIX_ROUTER
from sandbox_api.openapi import PROXY_METHODS, TERMINAL_PATHS, document

OPENAPI_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_PARAM = re.compile(r"\{[^}]*\}")


def _shape(path: str) -> str:
    return _PARAM.sub("{}", path)


def served_routes(settings) -> set[tuple[str, str]]:
    """(method, path shape) of every route the app answers, HEAD left out."""
    app = build_app(settings)
    routes: set[tuple[str, str]] = set()
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        assert path, f"unexpected resource {resource!r}"
        for route in resource:
            if route.method == hdrs.METH_HEAD:
                continue
            methods = PROXY_METHODS if route.method == hdrs.METH_ANY else (route.method.lower(),)
            routes.update((m, _shape(path)) for m in methods)
    for prefix_route in app[PREFIX_ROUTER].routes():
        routes.add((prefix_route.method.lower(), prefix_route.prefix + "/{}"))
    return routes


def documented_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, _shape(path)) for path, item in doc["paths"].items() for method in item if method in OPENAPI_METHODS
    }


def test_every_served_route_is_documented(settings):
    missing = served_routes(settings) - documented_routes(document())
    assert not missing, f"routes without documentation in sandbox_api/openapi.py: {sorted(missing)}"


def test_every_documented_route_is_served(settings):
    extra = documented_routes(document()) - served_routes(settings)
    assert not extra, f"documented routes the app does not serve: {sorted(extra)}"


def test_without_the_terminal_its_routes_are_neither_served_nor_documented(settings):
    import json

    from sandbox_api.openapi import document_json

    served = served_routes(replace(settings, disable_terminal=True))
    documented = documented_routes(json.loads(document_json(terminal=False)))
    assert served == documented
    assert not any(path in TERMINAL_PATHS for _, path in documented)


def test_the_document_is_valid_openapi():
    from schemathesis.specs.openapi.definitions import OPENAPI_31

    doc = document()
    assert doc["openapi"].startswith("3.1")
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft202012Validator(OPENAPI_31).iter_errors(doc)
    ]
    assert not errors


def _schemas(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Schema Object: under `schema` keys and in components.schemas."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema" and isinstance(value, dict):
                yield f"{where}/{key}", value
            elif key == "schemas" and where == "/components":
                for name, schema in value.items():
                    yield f"{where}/schemas/{name}", schema
            else:
                yield from _schemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _schemas(value, f"{where}/{i}")


def test_every_schema_is_a_valid_json_schema():
    found = list(_schemas(document()))
    assert len(found) > 50
    for where, schema in found:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as e:
            pytest.fail(f"{where}: {e.message}")


def test_every_reference_resolves():
    doc = document()
    text = repr(doc)
    for target in set(re.findall(r"'\$ref': '#/([^']+)'", text)):
        node: Any = doc
        for part in target.split("/"):
            assert isinstance(node, dict) and part in node, f"dangling $ref #/{target}"
            node = node[part]


def test_every_operation_has_a_tag_a_summary_and_a_success_or_error_answer():
    tags = {t["name"] for t in document()["tags"]}
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            assert operation["tags"][0] in tags, (method, path)
            assert operation["summary"], (method, path)
            assert operation["responses"], (method, path)
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{([^}]*)\}", path)), (method, path)


def test_only_the_open_paths_are_documented_without_authentication():
    from sandbox_api.http.auth import OPEN_PATHS

    public = {
        path
        for path, item in document()["paths"].items()
        for operation in item.values()
        if operation.get("security") == []
    }
    assert public == OPEN_PATHS


async def test_openapi_json_is_served(client):
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.json() == document()


async def test_swagger_redirects_to_its_page(client):
    resp = await client.get("/swagger", allow_redirects=False)
    assert resp.status == 301
    assert resp.headers["Location"] == "/swagger/index.html"


async def test_swagger_page_is_self_contained(client):
    resp = await client.get("/swagger/index.html")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert "doc.json" in page
    # Offline: nothing is loaded from elsewhere.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "import(" not in page


async def test_swagger_doc_json_is_the_document(client):
    resp = await client.get("/swagger/doc.json")
    assert resp.status == 200
    assert await resp.json() == document()
