"""First code the one-file binary runs (as `_sandbox_boot`, from the zip at its end).

CPython finds built-in modules only by top-level name; ours are dotted
(`aiohttp._http_parser`), so a finder for them goes first on `sys.meta_path`.
"""

import _imp
import gc
import sys
from _frozen_importlib import BuiltinImporter, ModuleSpec


class DottedBuiltins:
    """Finds the extensions compiled into this executable under their package names."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if "." in fullname and _imp.is_builtin(fullname):
            return ModuleSpec(fullname, BuiltinImporter, origin="built-in")
        return None


gc.disable()  # until the daemon listens (app.serve): collections during start-up find nothing
sys.meta_path.insert(0, DottedBuiltins)
sys.frozen = True  # what tools look for to tell a one-file program

try:
    from sandbox_api.cli import main
except (ImportError, SyntaxError, ValueError, EOFError) as error:  # a damaged code archive
    sys.stderr.write(f"sandbox-api: {sys.executable} is damaged ({type(error).__name__}: {error}); copy it again\n")
    raise SystemExit(1) from None
main()
