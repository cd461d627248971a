"""The terminal's wire shapes (see contract.py): the WebSocket's query. Its frames are
JSON text, described in routes.py."""

from __future__ import annotations

from typing import Annotated

from ..contract import Shape, doc

MAX_DIMENSION = 65535  # the kernel's winsize fields are 16-bit
DEFAULT_COLS, DEFAULT_ROWS = 80, 24


class TerminalQuery(Shape):
    session_id: Annotated[
        str, doc("The session to attach to, started if new; reconnecting replays its recent output.")
    ] = "default"
    # A bad size is ignored (the default), as the original: see routes.py.
    cols: Annotated[int, doc("Columns; a bad value means the default.", ge=1, le=MAX_DIMENSION)] = DEFAULT_COLS
    rows: Annotated[int, doc("Rows; a bad value means the default.", ge=1, le=MAX_DIMENSION)] = DEFAULT_ROWS
    working_dir: Annotated[str | None, doc("Default WORKDIR.")] = None
    shell: Annotated[str | None, doc("Default $SHELL, else zsh, bash, sh or ash.")] = None
