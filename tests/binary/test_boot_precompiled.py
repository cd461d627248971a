"""The binary's boot answers start-up compiles of source text from a table built with it
(packaging/static/boot.py, PrecompiledSources). Whatever the table holds, a program must
see exactly what the real compile/exec/eval give: these run it in this interpreter."""

from __future__ import annotations

import ast
import builtins
import dataclasses
import importlib.util
import marshal
import types
from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import ROOT

ANNOTATIONS = 0x1000000  # CO_FUTURE_ANNOTATIONS: this file has `from __future__ import annotations`


def load_boot() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("boot_under_test", ROOT / "packaging" / "static" / "boot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # under another name than _sandbox_boot: it does not boot
    return module


BOOT = load_boot()


@pytest.fixture
def installed() -> Iterator[object]:
    originals = (builtins.compile, builtins.exec, builtins.eval)
    sources = BOOT.PrecompiledSources({})
    sources.install()
    try:
        yield sources
    finally:
        sources.stop()
        assert (builtins.compile, builtins.exec, builtins.eval) == originals


def test_exec_and_eval_without_namespaces_use_the_callers(installed: object) -> None:
    seen: list[int] = []
    local_value = 41  # noqa: F841 (read by the texts, through the frame)
    exec("seen.append(local_value)")  # the function's own locals, read through its frame
    exec("seen.append(local_value * 100)", {"seen": seen, "local_value": 1})
    assert seen == [41, 100]
    assert eval("local_value + 1") == 42
    namespace: dict[str, object] = {}
    exec("made = 7", namespace)
    assert namespace["made"] == 7 and "__builtins__" in namespace


def test_compile_inherits_the_callers_future_flags_hit_or_miss(tmp_path: Path) -> None:
    source = "def f(x: undefined_name) -> None: pass\n"
    real = compile(source, "<gen>", "exec")
    assert real.co_flags & ANNOTATIONS  # inherited from this file
    table = {(source, "<gen>", "exec", ANNOTATIONS): real}
    for sources in (BOOT.PrecompiledSources({}), BOOT.PrecompiledSources(table)):
        sources.install()
        try:
            code = compile(source, "<gen>", "exec")
            namespace: dict[str, object] = {}
            exec(code, namespace)  # annotations stay text: no NameError
            assert code.co_flags & ANNOTATIONS
            plain = compile(source, "<gen>", "exec", dont_inherit=True)
            assert not plain.co_flags & ANNOTATIONS
        finally:
            sources.stop()
    assert sources.answered == 1 and sources.compiled == 1, (sources.answered, sources.compiled)


def test_a_table_entry_answers_only_its_exact_key() -> None:
    planted = compile("value = 'from the table'", "<string>", "exec", ANNOTATIONS, True)
    sources = BOOT.PrecompiledSources({("value = 1", "<string>", "exec", ANNOTATIONS): planted})
    sources.install()
    try:
        namespace: dict[str, object] = {}
        exec("value = 1", namespace)
        assert namespace["value"] == "from the table"  # the key matched: the table's code ran
        exec("value = 2", namespace)
        assert namespace["value"] == 2  # another text: compiled as usual
        assert eval("  value + 1", namespace) == 3  # eval strips leading blanks, as the real one
        assert isinstance(compile("x = 1", "<x>", "exec", ast.PyCF_ONLY_AST), ast.Module)  # passed through
    finally:
        sources.stop()
    assert (sources.answered, sources.compiled) == (1, 2)


def test_generated_classes_are_the_same_with_a_recorded_table(tmp_path: Path) -> None:
    def build() -> tuple[type, type]:
        @dataclasses.dataclass(frozen=True)
        class Point:
            x: int
            y: int = 2
            tags: list[str] = dataclasses.field(default_factory=list, hash=False)

        Pair = namedtuple("Pair", "left right")
        return Point, Pair

    record = tmp_path / "table"
    recording = BOOT.PrecompiledSources({}, str(record))
    recording.install()
    try:
        build()
    finally:
        recording.stop()
    table = marshal.loads(record.read_bytes())
    assert len(table) >= 5  # __init__, __repr__, __eq__, __hash__, __setattr__... and the namedtuple's __new__
    replaying = BOOT.PrecompiledSources(table)
    replaying.install()
    try:
        Point, Pair = build()
    finally:
        replaying.stop()
    assert replaying.compiled == 0 and replaying.answered == len(table)
    p = Point(1)
    assert (p.x, p.y, p.tags) == (1, 2, []) and p == Point(1, 2, []) and hash(p) == hash(Point(1))
    assert repr(p).endswith("Point(x=1, y=2, tags=[])")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 3  # type: ignore[misc]
    assert Pair(1, 2).right == 2 and Pair._fields == ("left", "right")
