"""Fetch pinned source archives and wheels by name, version and sha256 (PyPI's simple JSON API).

Used by the static build (packaging/static/build.py); pip cannot download an sdist
without building its metadata, which needs each package's build backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.request
from typing import Any

INDEX = os.environ.get("SANDBOX_PYPI_SIMPLE", "https://pypi.org/simple")


def fetch(name: str, filename: str, sha256: str, dest: str) -> str:
    path = os.path.join(dest, filename)
    if os.path.exists(path) and _sha256(path) == sha256:
        return path
    os.makedirs(dest, exist_ok=True)
    tmp = path + ".part"
    with urllib.request.urlopen(_listed(name, filename)["url"], timeout=300) as response, open(tmp, "wb") as out:
        while chunk := response.read(1 << 20):
            out.write(chunk)
    if _sha256(tmp) != sha256:
        os.unlink(tmp)
        raise SystemExit(f"fetch: {filename}: sha256 mismatch")
    os.replace(tmp, path)
    return path


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _listed(name: str, filename: str) -> dict[str, Any]:
    """The index's entry for `filename` of project `name` (its url and hashes)."""
    request = urllib.request.Request(f"{INDEX}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    for entry in files:
        if entry["filename"] == filename:
            return dict(entry)
    raise SystemExit(f"fetch: {filename} is not on the index for {name}")


def lookup(name: str, filename: str) -> str:
    """The sha256 of `filename` as the index lists it (to write the lock file)."""
    return str(_listed(name, filename)["hashes"]["sha256"])


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        name, filename = arg.split("/", 1)
        print(name, filename, lookup(name, filename))
