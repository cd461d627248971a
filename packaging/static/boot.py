"""First code the one-file binary runs (as `_sandbox_boot`, from the zip at its end).

Two finders go first on `sys.meta_path`:
- CPython finds built-in modules only by top-level name; ours are dotted
  (`aiohttp._http_parser`), so `DottedBuiltins` finds those.
- `ArchiveModules` imports the zip's modules itself. zipimport (3.11) is correct but slow
  for a start that imports ~340 modules: its `find_spec` asks `get_filename`, which reads
  and unmarshals the module, and `exec_module` then reads and unmarshals it again, each
  read opening the file anew (~30 ms of a ~190 ms start). This one reads zipimport's own
  table of contents (already parsed to import this module), keeps one descriptor on the
  executable and reads each module once with `pread`. Resources and `__path__` scans
  still go through zipimport, which serves them well.

And until the daemon listens, `PrecompiledSources` answers `compile`, `exec` and `eval`
of source text from code compiled when the binary was built: dataclasses, attrs and
namedtuple generate their methods as source at import, ~240 compiles and ~10% of the
start. The key is everything the result depends on (the text, file name, mode, future
flags); a text not in the table is compiled as usual, so a stale table costs time only.
"""

import _imp
import builtins
import gc
import marshal
import os
import sys
import zlib
from _frozen_importlib import BuiltinImporter, ModuleSpec
from _frozen_importlib_external import MAGIC_NUMBER

_exec = builtins.exec  # before PrecompiledSources stands in for it


class DottedBuiltins:
    """Finds the extensions compiled into this executable under their package names."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if "." in fullname and _imp.is_builtin(fullname):
            return ModuleSpec(fullname, BuiltinImporter, origin="built-in")
        return None


class ArchiveModules:
    """Finder and loader for the compiled modules in the zip at the executable's end."""

    def __init__(self, archive, toc):
        self.archive = archive
        self.toc = toc  # zipimport's: arcname -> (path, compress, size, file_size, header offset, ...)
        self.fd = os.open(archive, os.O_RDONLY | os.O_CLOEXEC)  # read from the file we started as
        self.modules = {}  # module name -> (arcname, is a package)
        for arcname in toc:
            if arcname.endswith("/__init__.pyc"):
                self.modules[arcname[:-12].replace("/", ".")] = (arcname, True)
            elif arcname.endswith(".pyc"):
                self.modules.setdefault(arcname[:-4].replace("/", "."), (arcname, False))

    def find_spec(self, fullname, path=None, target=None):
        found = self.modules.get(fullname)
        if found is None:
            return None
        arcname, package = found
        spec = ModuleSpec(fullname, self, origin=f"{self.archive}/{arcname}", is_package=package)
        spec.has_location = True  # __file__, as zipimport sets it
        spec.loader_state = arcname
        if package:
            spec.submodule_search_locations = [f"{self.archive}/{arcname[:-13]}"]
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        _exec(self._code(module.__spec__.loader_state), module.__dict__)

    def _code(self, arcname):
        data = self._read(arcname)
        if data[:4] != MAGIC_NUMBER:
            raise ImportError(f"bad magic number in {arcname}", path=self.archive)
        return marshal.loads(memoryview(data)[16:])

    def _read(self, arcname):
        _, compress, size, _, offset, *_ = self.toc[arcname]
        head = 30 + len(arcname.encode())
        raw = os.pread(self.fd, head + size, offset)
        if raw[:4] != b"PK\x03\x04" or len(raw) != head + size:
            raise ImportError(f"bad local file header for {arcname}", path=self.archive)
        extra = int.from_bytes(raw[28:30], "little")
        data = raw[head:] if extra == 0 else os.pread(self.fd, size, offset + head + extra)
        return data if compress == 0 else zlib.decompress(data, -15)

    # The rest of the loader protocol, for tools that ask (inspect, pkgutil, resources).
    def get_code(self, fullname):
        return self._code(self.modules[fullname][0])

    def get_source(self, fullname):
        return None

    def is_package(self, fullname):
        return self.modules[fullname][1]

    def get_filename(self, fullname):
        return f"{self.archive}/{self.modules[fullname][0]}"

    def get_data(self, path):
        prefix = self.archive + "/"
        if not path.startswith(prefix) or path[len(prefix) :] not in self.toc:
            raise OSError(0, "not in the archive", path)
        return self._read(path[len(prefix) :])

    def get_resource_reader(self, fullname):
        arcname, package = self.modules[fullname]
        if not package:
            return None
        import zipimport  # frozen in the interpreter: no cost

        parent = arcname[:-13].rpartition("/")[0]  # zipimport's reader wants the package's parent
        return zipimport.zipimporter(f"{self.archive}/{parent}" if parent else self.archive).get_resource_reader(
            fullname
        )


class PrecompiledSources:
    """compile/exec/eval of source text, from a table of code objects built with the binary."""

    # The __future__ flags a compile inherits from its caller (CPython's PyCF_MASK).
    INHERITED = 0x1FE0000

    def __init__(self, table, record_to=None):
        self.table = table  # (source, filename, mode, flags) -> code
        self.record_to = record_to  # the build's learning run: every compile is kept, and written at stop()
        self.recorded = {}
        self.answered = self.compiled = 0  # what --build-info reports
        self.originals = (builtins.compile, builtins.exec, builtins.eval)

    def install(self):
        builtins.compile, builtins.exec, builtins.eval = self.compile, self.exec, self.eval

    def stop(self):
        """The daemon listens: builtins are themselves again and the table is let go."""
        builtins.compile, builtins.exec, builtins.eval = self.originals
        self.table = {}
        if self.record_to is not None:
            with open(self.record_to, "wb") as out:
                marshal.dump(self.recorded, out)

    def _code(self, source, filename, mode, flags):
        key = (source, filename, mode, flags)
        code = self.table.get(key)
        if code is None:
            self.compiled += 1
            code = self.originals[0](source, filename, mode, flags, True)
        else:
            self.answered += 1
        if self.record_to is not None:
            self.recorded[key] = code
        return code

    def compile(self, source, filename, mode, flags=0, dont_inherit=False, optimize=-1, **options):
        caller = _caller()
        if caller is None:  # called from C with no Python frame: nothing to inherit or look up
            return self.originals[0](source, filename, mode, flags, dont_inherit, optimize, **options)
        if not dont_inherit:
            flags |= caller.f_code.co_flags & self.INHERITED
        if type(source) is not str or type(filename) is not str or optimize != -1 or options or flags & ~self.INHERITED:
            return self.originals[0](source, filename, mode, flags, True, optimize, **options)
        return self._code(source, filename, mode, flags)

    def exec(self, source, globals=None, locals=None, **options):
        caller = _caller()
        if caller is None:
            return self.originals[1](source, globals, locals, **options)
        if type(source) is str:
            source = self._code(source, "<string>", "exec", caller.f_code.co_flags & self.INHERITED)
        return self.originals[1](source, *_namespaces(caller, globals, locals), **options)

    def eval(self, source, globals=None, locals=None):
        caller = _caller()
        if caller is None:
            return self.originals[2](source, globals, locals)
        if type(source) is str:  # eval strips leading blanks of a text
            source = self._code(source.lstrip(" \t"), "<string>", "eval", caller.f_code.co_flags & self.INHERITED)
        return self.originals[2](source, *_namespaces(caller, globals, locals))


def _caller():
    """The Python frame that called compile/exec/eval (what CPython inherits from)."""
    try:
        return sys._getframe(2)
    except ValueError:
        return None


def _namespaces(caller, globals, locals):
    """Without `globals`, the caller's namespaces, as exec and eval take them from the frame calling them."""
    if globals is None:
        return caller.f_globals, caller.f_locals if locals is None else locals
    return globals, locals


def precompiled_sources(archive):
    """The table the build recorded (SANDBOX_RECORD_COMPILES names where a learning run writes it)."""
    record_to = os.environ.get(RECORD_COMPILES)
    table = {}
    if record_to is None and archive is not None and PRECOMPILED in archive.toc:
        table = marshal.loads(archive._read(PRECOMPILED))
    return PrecompiledSources(table, record_to)


PRECOMPILED = "_sandbox_precompiled.marshal"  # the table's name in the zip (build.py writes it)
RECORD_COMPILES = "SANDBOX_RECORD_COMPILES"  # set by build.py's learning run only


def boot():
    """Everything the binary does before the CLI runs; then the CLI."""
    global precompiled  # --build-info reads it
    gc.disable()  # until the daemon listens (app.serve): collections during start-up find nothing
    sys.meta_path.insert(0, DottedBuiltins)
    archive = None
    if type(__loader__).__name__ == "zipimporter" and isinstance(getattr(__loader__, "_files", None), dict):
        archive = ArchiveModules(__loader__.archive, __loader__._files)
        sys.meta_path.insert(1, archive)
    sys.frozen = True  # what tools look for to tell a one-file program

    try:
        precompiled = precompiled_sources(archive)
        precompiled.install()
        from sandbox_api import bundle
        from sandbox_api.cli import main

        bundle.when_listening(precompiled.stop)
    except (ImportError, SyntaxError, ValueError, EOFError, zlib.error) as error:  # a damaged code archive
        sys.stderr.write(f"sandbox-api: {sys.executable} is damaged ({type(error).__name__}: {error}); copy it again\n")
        raise SystemExit(1) from None
    main()


if __name__ == "_sandbox_boot":  # (the tests load this file under another name, for its classes)
    boot()
