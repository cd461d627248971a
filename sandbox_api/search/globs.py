"""Go's filepath.Match semantics as a compiled regex (what the original's patterns mean).

`*` and `?` never match `/`; `[...]` is a class, negated with `^`; `\\` escapes the next
character; matching is case-sensitive. A malformed pattern matches nothing (Go returns
ErrBadPattern). fnmatch differs on several of these, hence this translation.
"""

from __future__ import annotations

import re
from functools import lru_cache

_NEVER = re.compile(r"(?!)")


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            while i + 1 < n and pattern[i + 1] == "*":
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i + 1 >= n:
                return _NEVER
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = i + 1
            negate = j < n and pattern[j] == "^"
            if negate:
                j += 1
            items = []
            first = True
            while True:
                if j >= n:
                    return _NEVER  # unclosed class
                if pattern[j] == "]" and not first:
                    break
                first = False
                lo = pattern[j]
                if lo == "\\":
                    j += 1
                    if j >= n:
                        return _NEVER
                    lo = pattern[j]
                j += 1
                if j + 1 < n and pattern[j] == "-" and pattern[j + 1] != "]":
                    hi = pattern[j + 1]
                    j += 2
                    if hi == "\\":
                        if j >= n:
                            return _NEVER
                        hi = pattern[j]
                        j += 1
                    if hi < lo:
                        return _NEVER
                    items.append(f"{re.escape(lo)}-{re.escape(hi)}")
                else:
                    items.append(re.escape(lo))
            body = "".join(items)
            out.append(f"[^/{body}]" if negate else f"[{body}]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def glob_match(pattern: str, name: str) -> bool:
    return compile_glob(pattern).match(name) is not None
