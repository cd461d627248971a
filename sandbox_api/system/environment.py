"""POST /environment/reload: apply the guest metadata document's environment.

The document (`BL_METADATA_PATH`, default /bl/metadata) is `{"generation": N,
"environment": {KEY: VALUE}}`. Every key is set in the daemon's environment, which
each new process inherits. Keys an earlier reload set and this document lacks are
unset; keys no reload ever set (the boot environment) are never touched.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .. import config
from ..errors import Internal, NotFound, os_error_text


class EnvironmentReloader:
    def __init__(self, metadata_path: str) -> None:
        self.metadata_path = metadata_path
        self._applied: set[str] = set()

    def reload(self) -> dict[str, Any]:
        try:
            with open(self.metadata_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise NotFound(f"open {self.metadata_path}: no such file or directory") from None
        except OSError as e:
            raise Internal(os_error_text(e, "open", str(self.metadata_path))) from None
        try:
            document = json.loads(raw)
        except ValueError as e:
            raise Internal(f"invalid metadata document: {e}") from None
        if not isinstance(document, dict):
            raise Internal("invalid metadata document: not a JSON object")
        environment = document.get("environment") or {}
        generation = document.get("generation", 0)
        if not isinstance(environment, dict) or not isinstance(generation, int):
            raise Internal("invalid metadata document: environment must be an object and generation an integer")
        values = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in environment.items()}
        bad = [k for k in values if not config.valid_variable(k, values[k])]
        if bad:
            raise Internal(f"invalid metadata document: bad variable name or value for {bad[0]!r}")
        for key, value in values.items():
            os.environ[key] = value
        removed = sorted(self._applied - values.keys())
        for key in removed:
            os.environ.pop(key, None)
        self._applied = (self._applied - set(removed)) | values.keys()
        return {"generation": generation, "applied": len(values), "removed": len(removed)}
