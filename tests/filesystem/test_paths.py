"""The one path resolver: raw-path %2F rule, //abs, relative to WORKDIR, ~, display paths."""

from __future__ import annotations

import pytest

from sandbox_api.errors import Invalid
from sandbox_api.http.paths import from_tail
from sandbox_api.paths import format_path


@pytest.mark.parametrize(
    "tail, raw, display, absolute",
    [
        ("//tmp/x", "/filesystem//tmp/x", "/tmp/x", "/tmp/x"),  # Python SDK
        ("//tmp/x", "/filesystem/%2Ftmp%2Fx", "//tmp/x".replace("//", "/"), "/tmp/x"),  # TS SDK
        ("/tmp/x", "/filesystem%2Ftmp/x", "/tmp/x", "/tmp/x"),  # the original's tests
        ("/src/a.ts", "/filesystem/src%2Fa.ts", "/src/a.ts", "/src/a.ts"),  # TS quirk: absolute
        ("/src/a.ts", "/filesystem/src/a.ts", "src/a.ts", "/work/src/a.ts"),  # relative
        ("/", "/filesystem/", "/work", "/work"),  # WORKDIR itself
        ("/", "/filesystem%2F", "/", "/"),  # the root
        ("", "/filesystem", "/work", "/work"),
        ("/./", "/filesystem/./", "/work", "/work"),
        ("//tmp/./a", "/filesystem//tmp/./a", "/tmp/./a", "/tmp/a"),  # display is not cleaned
    ],
)
def test_url_forms(tail, raw, display, absolute):
    resolved = from_tail(tail, raw, "/work")
    assert resolved.display == display
    assert resolved.absolute == absolute


def test_home_expansion(monkeypatch):
    monkeypatch.setenv("HOME", "/home/me")
    assert from_tail("/~/x", "/filesystem/~/x", "/work").absolute == "/home/me/x"
    assert format_path("~bob/x") == "/home/mebob/x"  # only the first character, as the original
    monkeypatch.delenv("HOME")
    with pytest.raises(Invalid, match="home directory not found"):
        from_tail("/~/x", "/filesystem/~/x", "/work")


def test_unformatted_keeps_tilde_and_slashes():
    resolved = from_tail("/~/a//b", "/x/~/a//b", "/work", formatted=False)
    assert resolved.display == "~/a//b"
    assert resolved.absolute == "/work/~/a/b"


def test_names():
    assert from_tail("/", "/filesystem%2F", "/w").name == "/"
    assert from_tail("//tmp/", "/filesystem//tmp/", "/w").name == "tmp"
