"""File names that are not UTF-8, on the wire: one U+FFFD per invalid byte, everywhere.

Linux names are bytes. Python holds a byte that is not UTF-8 as a lone surrogate
(os.fsdecode's surrogateescape: 0xFF is U+DCFF), which no UTF-8 encoder takes and no
strict JSON client accepts. Every name we send (listings, tree, find, fuzzy and content
search, watch events, MCP, error messages, headers) shows such a byte as U+FFFD, which
is what the Go original's encoding/json sends and so what SDK clients see. The name is
then only for display: a file is addressed by its raw bytes, percent-encoded in the
URL path (`%FF`), see http/prefix_routes.py.
"""

from __future__ import annotations

import codecs

REPLACEMENT = "\ufffd"
_REPLACEMENT_UTF8 = REPLACEMENT.encode()


def go_replace(error: UnicodeError) -> tuple[str | bytes, int]:
    """Go's rule, both ways: decoding, one U+FFFD per invalid byte; encoding, one U+FFFD
    per lone surrogate (each stands for one byte of the name)."""
    if isinstance(error, UnicodeEncodeError):
        # The UTF-8 encoder takes only ASCII text from a handler: give the bytes.
        return _REPLACEMENT_UTF8 * (error.end - error.start), error.end
    if isinstance(error, UnicodeDecodeError):
        return REPLACEMENT, error.start + 1
    raise error


codecs.register_error("go_replace", go_replace)


def utf8(text: str) -> bytes:
    """`text` as UTF-8, each lone surrogate as U+FFFD (free when there is none)."""
    return text.encode("utf-8", "go_replace")


def display(text: str) -> str:
    """`text` as it is shown on the wire: each lone surrogate as U+FFFD."""
    if text.isascii():
        return text
    return utf8(text).decode("utf-8")
