"""Pipeline events: one JSON object per line in the --events file, and the same facts in the log."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, TextIO

_LOGGER = logging.getLogger("assistant.events")


class EventLog:
    """Write events with the seconds elapsed since the daemon started (monotonic clock)."""

    def __init__(self, path: str | Path | None = None, start: float | None = None) -> None:
        self.start = time.monotonic() if start is None else start
        self._file: TextIO | None = None
        if path is not None:
            self._file = Path(path).open("w", encoding="utf-8")
        self.listeners: list = []

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"event": event, "time": round(time.monotonic() - self.start, 4), **fields}
        if self._file is not None:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._file.flush()
        details = " ".join(f"{key}={value!r}" for key, value in fields.items())
        _LOGGER.info("%s %s", event, details)
        for listener in self.listeners:
            listener(record)
        return record

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
