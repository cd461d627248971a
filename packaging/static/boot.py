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
"""

import _imp
import gc
import marshal
import os
import sys
import zlib
from _frozen_importlib import BuiltinImporter, ModuleSpec
from _frozen_importlib_external import MAGIC_NUMBER


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
        exec(self._code(module.__spec__.loader_state), module.__dict__)

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


gc.disable()  # until the daemon listens (app.serve): collections during start-up find nothing
sys.meta_path.insert(0, DottedBuiltins)
if type(__loader__).__name__ == "zipimporter" and isinstance(getattr(__loader__, "_files", None), dict):
    sys.meta_path.insert(1, ArchiveModules(__loader__.archive, __loader__._files))
sys.frozen = True  # what tools look for to tell a one-file program

try:
    from sandbox_api.cli import main
except (ImportError, SyntaxError, ValueError, EOFError, zlib.error) as error:  # a damaged code archive
    sys.stderr.write(f"sandbox-api: {sys.executable} is damaged ({type(error).__name__}: {error}); copy it again\n")
    raise SystemExit(1) from None
main()
