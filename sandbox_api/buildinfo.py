"""`sandbox-api --build-info`: how this program was built, as JSON on stdout.

Says, for each native extension the daemon relies on, whether the compiled code is
what actually runs (a package that fails to load its extension falls back to pure
Python silently: slower, and wrong for the binary). The tests use it.
"""

from __future__ import annotations

import json
import platform
import sys
from typing import Any

from . import __version__, bundle


def _origin(module: str) -> str:
    loaded = sys.modules.get(module)
    spec = getattr(loaded, "__spec__", None)
    return str(getattr(spec, "origin", None) or "?")


def native_extensions() -> dict[str, dict[str, Any]]:
    """{name: {"compiled": bool, "origin": where the code came from}}."""
    import aiohttp.http_parser
    import aiohttp.http_writer
    import multidict
    import propcache.api
    import yarl._quoting
    from msgspec import _core as msgspec_core
    from rapidfuzz import process
    from rapidfuzz.distance import LCSseq

    from .linux import _native

    checks = {
        "aiohttp._http_parser": aiohttp.http_parser.HttpRequestParser.__module__ == "aiohttp._http_parser",
        "aiohttp._http_writer": aiohttp.http_writer._serialize_headers.__module__ == "aiohttp._http_writer",
        "multidict._multidict": multidict.CIMultiDict.__module__ == "multidict._multidict",
        "yarl._quoting_c": yarl._quoting._Quoter.__module__ == "yarl._quoting_c",
        "propcache._helpers_c": propcache.api.under_cached_property.__module__ == "propcache._helpers_c",
        "rapidfuzz.process_cpp_impl": process.extract.__module__ == "rapidfuzz.process_cpp_impl",
        "rapidfuzz.distance.metrics_cpp": LCSseq.similarity.__module__.startswith("rapidfuzz.distance.metrics_cpp"),
        "sandbox_api.linux._native": _native.__name__ == "sandbox_api.linux._native",
        # It has no pure-Python fallback (loaded means compiled): its origin is what tells.
        "msgspec._core": msgspec_core.__name__ == "msgspec._core",
    }
    return {name: {"compiled": bool(ok), "origin": _origin(name)} for name, ok in checks.items()}


def _precompiled() -> dict[str, int] | None:
    """In the binary: how many compiles of source text (dataclasses, attrs...) its boot
    answered from the table built with it, and how many it had to compile."""
    precompiled = getattr(sys.modules.get("_sandbox_boot"), "precompiled", None)
    if precompiled is None:
        return None
    return {"table": len(precompiled.table), "answered": precompiled.answered, "compiled": precompiled.compiled}


def build_info() -> dict[str, Any]:
    from .system.health import BUILD_TIME, GIT_COMMIT

    return {
        "version": __version__,
        "gitCommit": GIT_COMMIT,
        "buildTime": BUILD_TIME,
        "python": platform.python_version(),
        "oneFile": bundle.FROZEN,
        "executable": sys.executable,
        "nativeExtensions": native_extensions(),
        # Which importer read our Python code: in the binary, the boot module's own
        # (packaging/static/boot.py), which reads each module once, not zipimport.
        "moduleLoader": type(__spec__.loader).__name__,
        "precompiledSources": _precompiled(),
    }


def main() -> None:
    print(json.dumps(build_info(), indent=2))
