"""JSON log lines on stderr (`{"level","msg","time",...}`), as the original daemon writes."""

from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_LEVELS = {"WARNING": "warning", "ERROR": "error", "CRITICAL": "fatal", "INFO": "info", "DEBUG": "debug"}


# One encoder for every line (json.dumps with options builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # strftime once a second, not once a line
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        entry: dict[str, object] = {
            "level": _LEVELS.get(record.levelname, record.levelname.lower()),
            "msg": record.getMessage(),
            "time": f"{self._stamp}.{int(record.msecs):03d}Z",
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


def setup(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # No line shows the caller's file and line, the thread or the process: not looking
    # them up saves a stack walk and three calls per line (two lines per exec).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # aiohttp's own access logger would duplicate ours.
    logging.getLogger("aiohttp.access").disabled = True
