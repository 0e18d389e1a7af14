"""The daemon's state folder, and crash-safe reads and writes of the state files in it."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger(__name__)

STATE_DIR_ENV = "ASSISTANT_STATE_DIR"
_TEMP_SUFFIX = ".tmp"


def state_dir() -> Path:
    """Return the folder for persistent state.

    The first of: systemd's $STATE_DIRECTORY (set by StateDirectory= in the unit),
    $ASSISTANT_STATE_DIR, $XDG_STATE_HOME/assistant, ~/.local/state/assistant.
    """
    systemd_dirs = os.environ.get("STATE_DIRECTORY")
    if systemd_dirs:
        # systemd joins the folders with ":" when the unit names several.
        return Path(systemd_dirs.split(":")[0])
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "assistant"


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new file.

    The data goes to a temporary file in the same folder, which is flushed to disk and
    then renamed over `path`. The folder is synced too, so that the rename survives a
    power cut. A missing folder is created with mode 0700. Raises OSError.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TEMP_SUFFIX)
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_folder(path.parent)


def write_json_atomic(path: Path, value: Any) -> None:
    """Write `value` as indented UTF-8 JSON with write_atomic."""
    write_atomic(path, (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))


def read_json(path: Path) -> Any | None:
    """Return the JSON value stored in `path`, or None when the file is missing or corrupt.

    A file that is not valid UTF-8 JSON (truncated or overwritten) is moved aside with
    move_aside. Temporary files left by a write_atomic that was killed are removed.
    Raises OSError when the file exists but cannot be read.
    """
    remove_stale_temp_files(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        move_aside(path, f"not valid JSON: {error}")
        return None


def move_aside(path: Path, reason: str) -> Path | None:
    """Rename an unusable state file to NAME.corrupt-YYYYMMDDTHHMMSS and log a WARNING.

    The file is kept for inspection, and the daemon starts as if it were missing.
    Returns the new path, or None when the rename failed (logged as an ERROR).
    """
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    counter = 1
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{counter}")
    try:
        os.replace(path, target)
    except OSError as error:
        _LOGGER.error("State file %s is unusable (%s) and could not be moved aside: %s", path, reason, error)
        return None
    _LOGGER.warning("State file %s is unusable (%s); moved it to %s and started without it", path, reason, target)
    return target


def remove_stale_temp_files(path: Path) -> None:
    """Delete temporary files of `path` that a killed write_atomic left behind."""
    if not path.parent.is_dir():
        return
    for stale in path.parent.glob(f".{path.name}.*{_TEMP_SUFFIX}"):
        try:
            stale.unlink()
            _LOGGER.info("Removed %s, left by an interrupted write", stale)
        except OSError as error:
            _LOGGER.warning("Could not remove %s, left by an interrupted write: %s", stale, error)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
