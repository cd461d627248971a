"""End to end: headless Chromium renders /swagger offline and sends a request from it.

Besides our own document, the renderer is fed a document shaped like the ones msgspec
generates (`anyOf` with `{"type": "null"}`, `$ref`s into `components/schemas`, chains and
cycles of references, defaults outside the `anyOf`), through the page's own render function.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from ..terminal.test_browser import Browser, chromedriver, open_browser, save_screenshot  # noqa: F401 - a fixture

pytestmark = pytest.mark.timeout(120)

OPEN_HEALTH = """
const op = [...document.querySelectorAll('details.op')].find(d =>
    d.querySelector('.path').textContent === '/health' && d.querySelector('.method').textContent === 'get');
op.open = true;
op.dispatchEvent(new Event('toggle'));
op.querySelector('.try button').click();
[...op.querySelectorAll('.try button')].find(b => b.textContent === 'Send').click();
return true;
"""

# Opens every operation and every schema (each builds its body when first opened).
OPEN_ALL = """
document.querySelectorAll('details.op').forEach(d => { d.open = true; d.dispatchEvent(new Event('toggle')); });
return document.querySelectorAll('details.op[open]').length;
"""

# The rows of the first property list under `root`: name -> type, chips, required, description.
ROWS = """
function rows(root) {
    const list = root.querySelector('ul.props');
    const out = {};
    for (const li of list.querySelectorAll(':scope > li[data-property]')) {
        const desc = li.querySelector(':scope > .md');
        out[li.dataset.property] = {
            type: li.querySelector(':scope > .type').textContent,
            chips: [...li.querySelectorAll(':scope > .fact')].map(c => c.textContent),
            required: !!li.querySelector(':scope > .req'),
            description: desc ? desc.innerHTML : '',
        };
    }
    return out;
}
function unfold(root, name) {
    const li = root.querySelector(`ul.props > li[data-property="${name}"]`);
    li.querySelector(':scope > .type.ref').click();
    return li.querySelector(':scope > .unfold');
}
"""

GENERATED: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "generated", "version": "2", "description": "Made by `msgspec`."},
    "tags": [{"name": "things", "description": "All the `things`."}],
    "paths": {
        "/things/{name}": {
            "parameters": [
                {
                    "name": "name",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "The `name`.",
                }
            ],
            "get": {
                "operationId": "get_thing",
                "tags": ["things"],
                "summary": "Read a `Thing`",
                "parameters": [{"$ref": "#/components/parameters/Verbose"}],
                "responses": {
                    "200": {
                        "description": "The `Thing`",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Alias"},
                                "example": {"name": "a", "size": 3},
                            }
                        },
                    }
                },
            },
            "put": {
                "operationId": "put_thing",
                "tags": ["things"],
                "summary": "Write a `Thing`",
                "requestBody": {"$ref": "#/components/requestBodies/ThingBody"},
                "responses": {"204": {"description": "Written"}},
            },
        }
    },
    "components": {
        "parameters": {
            "Verbose": {"name": "verbose", "in": "query", "schema": {"type": "boolean", "default": False}},
        },
        "requestBodies": {
            "ThingBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}},
            }
        },
        "schemas": {
            "Alias": {"$ref": "#/components/schemas/Thing"},
            "Thing": {
                "title": "Thing",
                "type": "object",
                "description": "A `thing`.",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "description": "Its `name`."},
                    "size": {"type": "integer", "minimum": 0, "maximum": 100, "default": 10},
                    "kind": {"$ref": "#/components/schemas/Kind"},
                    "owner": {"anyOf": [{"$ref": "#/components/schemas/Owner"}, {"type": "null"}], "default": None},
                    "parent": {"oneOf": [{"$ref": "#/components/schemas/Thing"}, {"type": "null"}]},
                    "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
                    "labels": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "A **short** note."},
                    "ghost": {"$ref": "#/components/schemas/Missing"},
                },
                "required": ["name", "kind"],
            },
            "Kind": {"title": "Kind", "enum": ["small", "large"]},
            "Owner": {
                "type": "object",
                "properties": {"contact": {"$ref": "#/components/schemas/Contact"}},
                "required": ["contact"],
            },
            "Contact": {
                "type": "object",
                "properties": {"email": {"type": "string", "format": "email"}},
                "additionalProperties": {"type": "string", "maxLength": 64},
            },
            "Tag": {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]},
        },
    },
}


async def open_swagger(http: aiohttp.ClientSession, chromedriver: str, url: str, profile: str) -> Browser:  # noqa: F811
    browser = await open_browser(http, chromedriver, profile)
    await browser.call("POST", "/url", {"url": f"{url}/swagger"})
    await browser.until("return document.querySelectorAll('details.op .method').length", lambda n: n > 50)
    return browser


async def test_the_page_renders_every_operation_and_tries_one(daemon, chromedriver, tmp_path):  # noqa: F811
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        browser = await open_swagger(http, chromedriver, daemon.url, str(tmp_path / "profile"))
        try:
            assert (await browser.script("return location.pathname")) == "/swagger/index.html"
            count = await browser.script("return document.querySelectorAll('details.op .method').length")
            async with http.get(f"{daemon.url}/openapi.json") as resp:
                doc = await resp.json()
            assert count == sum(len(item) for item in doc["paths"].values())
            await browser.script(OPEN_HEALTH)
            # The JSON answer is shown indented once complete.
            text = await browser.until(
                "return [...document.querySelectorAll('.try pre')].map(p => p.textContent).join('')",
                lambda text: '\n  "status": "ok"' in text,
            )
            assert text.startswith("200")
            await save_screenshot(browser, tmp_path / "swagger-top.png")
        finally:
            await browser.call("DELETE", "")


async def test_root_is_listed_once_with_its_five_methods(daemon, chromedriver, tmp_path):  # noqa: F811
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        browser = await open_swagger(http, chromedriver, daemon.url, str(tmp_path / "profile"))
        try:
            entries = await browser.script(
                "return [...document.querySelectorAll('details.op[data-path]')]"
                ".filter(d => d.dataset.path === '/').map(d => [...d.querySelectorAll('.method')].map(m => m.textContent))"
            )
            assert len(entries) == 1
            assert sorted(entries[0]) == ["delete", "get", "patch", "post", "put"]
            # Its try-it form lets one pick the method.
            options = await browser.script(
                "const d = document.querySelector('details.op[data-path=\"/\"]');"
                "d.open = true; d.dispatchEvent(new Event('toggle'));"
                "return [...d.querySelectorAll('.try select option')].map(o => o.value)"
            )
            assert sorted(options) == ["delete", "get", "patch", "post", "put"]
        finally:
            await browser.call("DELETE", "")


async def test_descriptions_are_markdown_and_nullables_read_as_such(daemon, chromedriver, tmp_path):  # noqa: F811
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        browser = await open_swagger(http, chromedriver, daemon.url, str(tmp_path / "profile"))
        try:
            assert await browser.script(OPEN_ALL) > 50
            text = await browser.script("return document.querySelector('main').innerText")
            assert "`" not in text
            assert await browser.script("return document.querySelectorAll('#schemas code, #ops code').length") > 50
            assert "one of: string" not in text
            rows = await browser.script(
                ROWS + "return rows(document.querySelector('details[data-schema=ProcessResponse]'))"
            )
            assert rows["completedAt"]["type"] == "string, nullable"
            assert rows["logs"]["type"] == "string, nullable"
            assert "<code>null</code>" in rows["logs"]["description"]
            assert rows["pid"]["required"] and not rows["stdin"]["required"]
            await browser.script(
                "document.querySelector('details[data-schema=ProcessResponse]').scrollIntoView(); return true"
            )
            await save_screenshot(browser, tmp_path / "swagger-schema.png")
        finally:
            await browser.call("DELETE", "")


async def test_the_token_placeholder_fits_its_box(daemon, chromedriver, tmp_path):  # noqa: F811
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        browser = await open_swagger(http, chromedriver, daemon.url, str(tmp_path / "profile"))
        try:
            room, needed = await browser.script(
                """
                const input = document.getElementById('token');
                const style = getComputedStyle(input);
                const context = document.createElement('canvas').getContext('2d');
                context.font = `${style.fontSize} ${style.fontFamily}`;
                const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
                return [room, context.measureText(input.placeholder).width];
                """
            )
            assert needed <= room, (needed, room)
        finally:
            await browser.call("DELETE", "")


async def test_a_generated_document_renders_refs_nullables_and_constraints(daemon, chromedriver, tmp_path):  # noqa: F811
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        browser = await open_swagger(http, chromedriver, daemon.url, str(tmp_path / "profile"))
        try:
            await browser.call(
                "POST",
                "/execute/sync",
                {"script": "window.swaggerPage.render(arguments[0]); return 1", "args": [GENERATED]},
            )
            rows = await browser.script(
                ROWS
                + """
                const d = document.querySelector('details[data-schema=Thing]');
                d.open = true; d.dispatchEvent(new Event('toggle'));
                return rows(d);
                """
            )
            assert rows["name"] == {
                "type": "string", "chips": ["length ≥ 1"], "required": True, "description": "Its <code>name</code>."
            }  # fmt: skip
            assert rows["size"]["chips"] == ["default: 10", "≥ 0", "≤ 100"] and not rows["size"]["required"]
            assert rows["kind"]["type"] == "Kind" and rows["kind"]["required"]
            assert rows["kind"]["chips"] == ['values: "small", "large"']
            assert rows["owner"]["type"] == "Owner, nullable" and rows["owner"]["chips"] == ["default: null"]
            assert rows["parent"]["type"] == "Thing, nullable"  # the oneOf spelling, and a cycle
            assert rows["parent"]["description"] == ""  # Thing's own shows where Thing unfolds
            assert rows["tags"]["type"] == "Tag[]"
            assert rows["labels"]["type"] == "map<string, integer>"
            assert rows["note"]["type"] == "string, nullable"
            assert rows["note"]["description"] == "A <b>short</b> note."
            assert rows["ghost"]["type"] == "Missing"

            # References unfold on a click, through a chain (Thing.owner -> Owner.contact -> Contact)
            # and an array of them; the cycle Thing.parent -> Thing unfolds one level per click.
            unfolded = await browser.script(
                ROWS
                + """
                const d = document.querySelector('details[data-schema=Thing]');
                const owner = unfold(d, 'owner');
                const contact = unfold(owner, 'contact');
                return {
                    owner: rows(owner), contact: rows(contact), tag: rows(unfold(d, 'tags')),
                    parent: Object.keys(rows(unfold(d, 'parent'))),
                    parentText: d.querySelector('li[data-property=parent] > .unfold > .md').innerHTML,
                    ghost: unfold(d, 'ghost').textContent,
                };
                """
            )
            assert unfolded["owner"]["contact"]["type"] == "Contact" and unfolded["owner"]["contact"]["required"]
            assert unfolded["contact"]["email"]["type"] == "string (email)"
            assert unfolded["tag"]["label"] == {"type": "string", "chips": [], "required": True, "description": ""}
            assert "owner" in unfolded["parent"]
            assert unfolded["parentText"] == "A <code>thing</code>."
            assert unfolded["contact"]["*"]["type"] == "string"  # additionalProperties next to properties
            assert unfolded["contact"]["*"]["chips"] == ["length ≤ 64"]
            assert "#/components/schemas/Missing is not in this document" in unfolded["ghost"]

            # The operations: path and $ref parameters, a $ref body, a pretty example, one entry per method.
            op = await browser.script(
                """
                const ops = [...document.querySelectorAll('details.op[data-path="/things/{name}"]')];
                ops.forEach(d => { d.open = true; d.dispatchEvent(new Event('toggle')); });
                const [get, put] = ops;
                return {
                    count: ops.length,
                    params: [...get.querySelectorAll('table tr td:first-child .mono')].map(n => n.textContent),
                    example: get.querySelector('pre.example').textContent,
                    body: put.querySelector('.try textarea').value,
                    summary: get.querySelector('summary .summary').innerHTML,
                    text: document.querySelector('main').innerText,
                };
                """
            )
            assert op["count"] == 2  # different operations of one path stay apart
            assert op["params"] == ["name", "verbose"]
            assert op["example"] == '{\n  "name": "a",\n  "size": 3\n}'
            assert op["body"].startswith('{\n  "name": "",\n  "kind": "small"')
            assert op["summary"] == "Read a <code>Thing</code>"
            assert "`" not in op["text"]
        finally:
            await browser.call("DELETE", "")
