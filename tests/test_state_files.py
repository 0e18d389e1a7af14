"""Saved state files: private to the daemon's user, and never seen half-written."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from assistant.state import write_atomic, write_json_atomic
from assistant.timers import TimerStore

WRITES = 20
JOIN_TIMEOUT_SECONDS = 60


@pytest.fixture
def open_umask():
    """Run with umask 0, so that only the code under test can make a file private."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_state_file_mode_0600(tmp_path, open_umask):
    path = tmp_path / "timers.json"
    write_json_atomic(path, {"timers": []})
    assert mode_of(path) == 0o600


def test_state_file_replaces_wider_mode(tmp_path, open_umask):
    path = tmp_path / "timers.json"
    path.write_text("{}")
    os.chmod(path, 0o644)

    write_json_atomic(path, {"timers": [1]})

    assert mode_of(path) == 0o600
    assert path.read_text().strip().startswith("{")


def test_state_folder_created_0700(tmp_path, open_umask):
    path = tmp_path / "state" / "timers.json"
    write_atomic(path, b"{}")
    assert mode_of(path.parent) == 0o700


def test_timers_file_saved_private(tmp_path, open_umask, monkeypatch):
    # systemd passes StateDirectory= to the daemon as $STATE_DIRECTORY.
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    store = TimerStore.open_default()

    store.add(60)

    assert store.path == tmp_path / "state" / "timers.json"
    assert mode_of(store.path) == 0o600
    assert mode_of(store.path.parent) == 0o700
    assert [entry.name for entry in store.path.parent.iterdir()] == ["timers.json"]


def test_reader_never_sees_partial_file(tmp_path):
    path = tmp_path / "timers.json"
    # Several megabytes, so that a plain write would take many write() calls.
    payloads = [b"a" * (4 << 20), b"b" * (6 << 20)]
    write_atomic(path, payloads[0])
    writer_done = threading.Event()
    seen: dict[int, int] = {}
    unexpected: list[tuple[int, bytes]] = []

    def write_repeatedly() -> None:
        try:
            for index in range(WRITES):
                write_atomic(path, payloads[index % 2])
        finally:
            writer_done.set()

    def read_repeatedly() -> None:
        while not writer_done.is_set():
            data = path.read_bytes()
            if data in payloads:
                seen[len(data)] = seen.get(len(data), 0) + 1
            else:
                unexpected.append((len(data), data[:16]))

    writer = threading.Thread(target=write_repeatedly)
    reader = threading.Thread(target=read_repeatedly)
    reader.start()
    writer.start()
    writer.join(JOIN_TIMEOUT_SECONDS)
    reader.join(JOIN_TIMEOUT_SECONDS)

    assert not writer.is_alive()
    assert not reader.is_alive()
    assert unexpected == []
    # The reader ran during the writes and saw complete files only.
    assert sum(seen.values()) > 0
    assert path.read_bytes() == payloads[(WRITES - 1) % 2]
    assert [entry.name for entry in tmp_path.iterdir()] == ["timers.json"]


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "timers.json"
    write_atomic(path, b"old")

    def fail_replace(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail_replace)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, b"new")
    monkeypatch.undo()

    assert path.read_bytes() == b"old"
    assert [entry.name for entry in tmp_path.iterdir()] == ["timers.json"]
