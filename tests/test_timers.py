"""Timers: the persisted store, its announcer, and timers that outlive the daemon process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import pytest
import soundfile

from assistant.timers import STATE_FILE_NAME, Timer, TimerAnnouncer, TimerStore
from conftest import (
    PROJECT_DIR,
    events_named,
    load_clip,
    read_events,
    run_assistant,
    silence,
    transcribe_speech,
    write_wav,
)

ASYNC_TIMEOUT_SECONDS = 10


class FakeClocks:
    def __init__(self) -> None:
        self.wall = 1_764_856_000.0
        self.monotonic = 5_000.0


def fake_store(path: Path, clocks: FakeClocks) -> TimerStore:
    return TimerStore(path, wall_clock=lambda: clocks.wall, monotonic=lambda: clocks.monotonic)


def write_state(path: Path, timers: list[dict], next_id: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"version": 1, "next_id": next_id or len(timers) + 1, "timers": timers}
    path.write_text(json.dumps(content))


def saved_timers(path: Path) -> list[dict]:
    return json.loads(path.read_text())["timers"]


# --- the store ----------------------------------------------------------------------------


def test_timer_saved_and_reloaded(tmp_path):
    path = tmp_path / "timers.json"
    clocks = FakeClocks()
    first = fake_store(path, clocks)
    timer = first.add(600)

    assert saved_timers(path) == [
        {"id": 1, "duration_seconds": 600, "created": clocks.wall, "due": clocks.wall + 600}
    ]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    # A new process: its monotonic clock starts elsewhere, 100 s of wall time later.
    later = FakeClocks()
    later.wall = clocks.wall + 100
    later.monotonic = 42.0
    second = fake_store(path, later)
    assert second.timers() == [timer]
    assert second.remaining_seconds(timer) == pytest.approx(500)
    assert second.add(60).id == 2


def test_wall_clock_jump_does_not_move_timers(tmp_path):
    clocks = FakeClocks()
    store = fake_store(tmp_path / "timers.json", clocks)
    timer = store.add(600)
    clocks.wall -= 86_400
    assert store.remaining_seconds(timer) == pytest.approx(600)
    clocks.wall += 2 * 86_400
    assert store.due_timers() == []


def test_due_and_next(tmp_path):
    clocks = FakeClocks()
    store = fake_store(tmp_path / "timers.json", clocks)
    assert store.seconds_until_next() is None
    long = store.add(600)
    short = store.add(60)
    assert store.timers() == [short, long]
    assert store.seconds_until_next() == pytest.approx(60)

    clocks.monotonic += 61
    assert store.due_timers() == [short]
    assert store.seconds_until_next() == 0.0
    assert store.remove([short.id]) == [short]
    assert store.remove([short.id]) == []
    assert store.seconds_until_next() == pytest.approx(539)


def test_add_rejects_zero(tmp_path):
    store = fake_store(tmp_path / "timers.json", FakeClocks())
    with pytest.raises(ValueError, match="at least 1 second"):
        store.add(0)


def test_listener_called_on_change(tmp_path):
    store = fake_store(tmp_path / "timers.json", FakeClocks())
    calls = []
    store.add_listener(lambda: calls.append(len(store.timers())))
    timer = store.add(10)
    store.remove([timer.id])
    assert calls == [1, 0]


CORRUPT_CONTENTS = {
    "empty": b"",
    "truncated": b'{"version": 1, "next_id": 2, "timers": [{"id": 1, "durat',
    "not_json": b"timers: 1\n",
    "not_utf8": b"\xff\xfe\x00{",
    "wrong_version": b'{"version": 2, "next_id": 1, "timers": []}',
    "missing_field": b'{"version": 1, "next_id": 2, "timers": [{"id": 1, "duration_seconds": 60, "due": 1.0}]}',
    "boolean_id": b'{"version": 1, "next_id": 2, "timers": '
                  b'[{"id": true, "duration_seconds": 60, "created": 0, "due": 60}]}',
    "duplicate_id": b'{"version": 1, "next_id": 3, "timers": ['
                    b'{"id": 1, "duration_seconds": 60, "created": 0, "due": 60},'
                    b'{"id": 1, "duration_seconds": 60, "created": 0, "due": 60}]}',
    "id_not_below_next": b'{"version": 1, "next_id": 1, "timers": '
                         b'[{"id": 1, "duration_seconds": 60, "created": 0, "due": 60}]}',
    "list": b"[]",
}


@pytest.mark.parametrize("content", CORRUPT_CONTENTS.values(), ids=CORRUPT_CONTENTS.keys())
def test_corrupt_state_moved_aside(tmp_path, caplog, content):
    path = tmp_path / "timers.json"
    path.write_bytes(content)

    with caplog.at_level(logging.WARNING, logger="assistant.state"):
        store = fake_store(path, FakeClocks())

    assert store.timers() == []
    aside = [entry for entry in tmp_path.iterdir() if entry.name != "timers.json"]
    assert len(aside) == 1
    assert aside[0].name.startswith("timers.json.corrupt-")
    assert aside[0].read_bytes() == content
    assert not path.exists()
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(aside[0]) in warnings[0].getMessage()

    # The store works again, on a fresh file.
    store.add(30)
    assert [timer["duration_seconds"] for timer in saved_timers(path)] == [30]


def test_two_corrupt_files_kept_apart(tmp_path):
    path = tmp_path / "timers.json"
    for content in (b"{", b"["):
        path.write_bytes(content)
        fake_store(path, FakeClocks())
    aside = sorted(entry.read_bytes() for entry in tmp_path.iterdir())
    assert aside == [b"[", b"{"]


def test_stale_temporary_files_removed(tmp_path):
    path = tmp_path / "timers.json"
    stale = tmp_path / ".timers.json.abc123.tmp"
    stale.write_bytes(b'{"half')
    other = tmp_path / "notes.tmp"
    other.write_bytes(b"keep")
    fake_store(path, FakeClocks())
    assert not stale.exists()
    assert other.exists()


def test_failed_save_keeps_timer_in_memory(tmp_path, caplog):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state folder should be")
    store = fake_store(blocker / "timers.json", FakeClocks())
    with caplog.at_level(logging.ERROR, logger="assistant.timers"):
        timer = store.add(60)
    assert store.timers() == [timer]
    assert any("Cannot save the timers" in record.getMessage() for record in caplog.records)


def test_default_store_in_state_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("ASSISTANT_STATE_DIR", str(tmp_path / "mine"))
    assert TimerStore.open_default().path == tmp_path / "mine" / STATE_FILE_NAME


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"STATE_DIRECTORY": "/var/lib/assistant:/var/lib/other", "ASSISTANT_STATE_DIR": "/x"}, "/var/lib/assistant"),
        ({"ASSISTANT_STATE_DIR": "/srv/state", "XDG_STATE_HOME": "/xdg"}, "/srv/state"),
        ({"XDG_STATE_HOME": "/xdg"}, "/xdg/assistant"),
    ],
)
def test_state_dir_order(monkeypatch, variables, expected):
    from assistant.state import state_dir

    for name in ("STATE_DIRECTORY", "ASSISTANT_STATE_DIR", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert state_dir() == Path(expected)


def test_state_dir_default_home(monkeypatch, tmp_path):
    from assistant.state import state_dir

    for name in ("STATE_DIRECTORY", "ASSISTANT_STATE_DIR", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert state_dir() == tmp_path / ".local" / "state" / "assistant"


# --- the announcer ------------------------------------------------------------------------


class Announcements:
    """Records announced timers and lets a test wait for the next one."""

    def __init__(self) -> None:
        self.timers: list[Timer] = []
        self.times: list[float] = []
        self.changed = asyncio.Event()

    async def announce(self, timer: Timer) -> None:
        self.timers.append(timer)
        self.times.append(time.monotonic())
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(ASYNC_TIMEOUT_SECONDS):
            while len(self.timers) < count:
                self.changed.clear()
                await self.changed.wait()


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    async with asyncio.timeout(ASYNC_TIMEOUT_SECONDS):
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.asyncio
async def test_announcer_sleeps_until_due(tmp_path):
    store = TimerStore(tmp_path / "timers.json")
    announcements = Announcements()
    task = asyncio.create_task(TimerAnnouncer(store, announcements.announce).run())
    try:
        await asyncio.sleep(0.05)
        started = time.monotonic()
        timer = store.add(1)
        await announcements.wait_for(1)
    finally:
        await stop(task)

    assert announcements.timers == [timer]
    assert 0.95 <= announcements.times[0] - started < 2.0
    assert store.timers() == []
    assert task.cancelled()


@pytest.mark.asyncio
async def test_announcer_woken_by_earlier_timer(tmp_path):
    store = TimerStore(tmp_path / "timers.json")
    long = store.add(3600)
    announcements = Announcements()
    task = asyncio.create_task(TimerAnnouncer(store, announcements.announce).run())
    try:
        await asyncio.sleep(0.05)
        # Set from another thread, as a tool call in the LLM stage does.
        adder = threading.Thread(target=store.add, args=(1,))
        adder.start()
        adder.join(ASYNC_TIMEOUT_SECONDS)
        await announcements.wait_for(1)
    finally:
        await stop(task)

    assert [timer.duration_seconds for timer in announcements.timers] == [1]
    assert store.timers() == [long]


@pytest.mark.asyncio
async def test_overdue_timers_announced_at_start(tmp_path):
    path = tmp_path / "timers.json"
    now = time.time()
    write_state(path, [
        {"id": 1, "duration_seconds": 600, "created": now - 700, "due": now - 100},
        {"id": 2, "duration_seconds": 60, "created": now - 90, "due": now - 30},
        {"id": 3, "duration_seconds": 600, "created": now, "due": now + 600},
    ])
    store = TimerStore(path)
    announcements = Announcements()
    async with asyncio.timeout(ASYNC_TIMEOUT_SECONDS):
        await TimerAnnouncer(store, announcements.announce).announce_due()

    assert [timer.id for timer in announcements.timers] == [1, 2]
    assert [timer["id"] for timer in saved_timers(path)] == [3]


@pytest.mark.asyncio
async def test_cancelled_announcement_keeps_timer(tmp_path):
    path = tmp_path / "timers.json"
    now = time.time()
    write_state(path, [{"id": 1, "duration_seconds": 60, "created": now - 60, "due": now}])
    store = TimerStore(path)
    started = asyncio.Event()

    async def announce_forever(timer: Timer) -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(TimerAnnouncer(store, announce_forever).run())
    async with asyncio.timeout(ASYNC_TIMEOUT_SECONDS):
        await started.wait()
    await stop(task)

    assert task.cancelled()
    assert [timer["id"] for timer in saved_timers(path)] == [1]


@pytest.mark.asyncio
async def test_failed_announcement_logged_and_dropped(tmp_path, caplog):
    path = tmp_path / "timers.json"
    now = time.time()
    write_state(path, [{"id": 7, "duration_seconds": 60, "created": now - 60, "due": now}], next_id=8)
    store = TimerStore(path)

    async def announce_fails(timer: Timer) -> None:
        raise RuntimeError("speaker unplugged")

    with caplog.at_level(logging.ERROR, logger="assistant.timers"):
        async with asyncio.timeout(ASYNC_TIMEOUT_SECONDS):
            await TimerAnnouncer(store, announce_fails).announce_due()

    assert store.timers() == []
    messages = [record.getMessage() for record in caplog.records]
    assert "Announcement of timer 7 failed; removing the timer" in messages


# --- the daemon process -------------------------------------------------------------------

FRENCH_CONFIG = '''\
[persona]
name = "Jarvis"
language = "fr"
max_sentences = 2
system_prompt = """Tu es {name}, un assistant vocal courtois qui fonctionne hors ligne sur cet ordinateur. \\
Nous sommes le {date}. \\
Réponds en {language} aux questions de l'utilisateur, en {max_sentences} phrases courtes au plus, \\
sans listes ni mise en forme. Si tu ne sais pas, dis simplement que tu ne sais pas."""
examples = [
    { user = "Quelle est la capitale de l'Italie ?", assistant = "La capitale de l'Italie est Rome." },
]

[stt]
model = "base"
language = "fr"

# With the default 0.3 s of audio kept before the speech, Whisper base hears this
# recording as "Minuteur diminute"; without it, as "Minuteur 10 minutes".
[listen]
pre_roll_seconds = 0.0
'''


@pytest.fixture
def french_config(tmp_path) -> Path:
    path = tmp_path / "french.toml"
    path.write_text(FRENCH_CONFIG, encoding="utf-8")
    return path


@pytest.fixture
def minuteur_input(tmp_path) -> Path:
    return write_wav(
        tmp_path / "minuteur.wav",
        load_clip("wyoming_oww_hey_jarvis.16k.wav"), silence(0.3),
        load_clip("stp_fr_minuteur_10_minutes.16k.wav"), silence(2.0),
    )


def run_daemon(tmp_path: Path, name: str, config: Path, input_path: Path, state_dir: Path):
    output = tmp_path / f"{name}.wav"
    events = tmp_path / f"{name}.jsonl"
    process = run_assistant(
        "run", "--config", str(config), "--input", str(input_path), "--output", str(output),
        "--events", str(events), env={"ASSISTANT_STATE_DIR": str(state_dir)},
    )
    assert process.returncode == 0, process.stderr[-3000:]
    return read_events(events), output, process


def output_seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


@pytest.mark.models
def test_french_timer_survives_restart(tmp_path, french_config, minuteur_input):
    state_dir = tmp_path / "state"
    state_file = state_dir / STATE_FILE_NAME
    before = time.time()

    events, _, _ = run_daemon(tmp_path, "first", french_config, minuteur_input, state_dir)
    transcripts = [event["text"] for event in events_named(events, "transcript")]
    assert transcripts == ["Minuteur 10 minutes"]
    assert [event["text"] for event in events_named(events, "reply")] == ["D'accord, minuteur de 10 minutes lancé."]
    timers = saved_timers(state_file)
    assert [timer["duration_seconds"] for timer in timers] == [600]
    assert before <= timers[0]["created"] <= time.time()
    assert timers[0]["due"] == pytest.approx(timers[0]["created"] + 600)
    assert stat.S_IMODE(os.stat(state_file).st_mode) == 0o600

    # A second process with no command: the timer is neither lost nor announced early.
    quiet = write_wav(tmp_path / "quiet.wav", silence(2.0))
    events, _, _ = run_daemon(tmp_path, "second", french_config, quiet, state_dir)
    assert events_named(events, "announce") == []
    assert saved_timers(state_file) == timers

    # Ten minutes later, as far as the state file can tell: the next start announces it.
    overdue = {**timers[0], "created": timers[0]["created"] - 600, "due": timers[0]["due"] - 600}
    write_state(state_file, [overdue], next_id=2)
    events, output, _ = run_daemon(tmp_path, "third", french_config, quiet, state_dir)
    announcements = events_named(events, "announce")
    assert [event["text"] for event in announcements] == ["Votre minuteur de 10 minutes est terminé."]
    names = [event["event"] for event in events]
    assert names.index("ready") < names.index("announce")
    assert output_seconds(output) > 1.0
    assert saved_timers(state_file) == []


@pytest.mark.models
def test_english_announcement_spoken(tmp_path, transcriber):
    state_dir = tmp_path / "state"
    now = time.time()
    write_state(state_dir / STATE_FILE_NAME, [{"id": 1, "duration_seconds": 600, "created": now - 700, "due": now - 100}])
    quiet = write_wav(tmp_path / "quiet.wav", silence(1.0))

    events, output, _ = run_daemon(tmp_path, "announce", PROJECT_DIR / "config.toml", quiet, state_dir)

    assert [event["text"] for event in events_named(events, "announce")] == ["Your 10 minute timer is done."]
    samples, rate = soundfile.read(output, dtype="int16")
    spoken = transcribe_speech(transcriber, samples, rate)
    spoken_words = set(spoken.replace(".", " ").replace(",", " ").split())
    assert {"timer", "done"} <= spoken_words, spoken


@pytest.mark.models
def test_timer_file_loads_after_kill(tmp_path, french_config, minuteur_input):
    state_dir = tmp_path / "state"
    state_file = state_dir / STATE_FILE_NAME
    command = [
        sys.executable, "-m", "assistant", "run", "--config", str(french_config), "--input", str(minuteur_input),
        "--output", str(tmp_path / "out.wav"), "--events", str(tmp_path / "events.jsonl"),
    ]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "ASSISTANT_STATE_DIR": str(state_dir)}
    process = subprocess.Popen(command, cwd=PROJECT_DIR, env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not state_file.exists():
            assert process.poll() is None, "the daemon exited before saving the timer"
            assert time.monotonic() < deadline, "no timer saved within 300 s"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)

    assert process.returncode == -signal.SIGKILL
    store = TimerStore(state_file)
    assert [timer.duration_seconds for timer in store.timers()] == [600]
    assert sorted(entry.name for entry in state_dir.iterdir()) == [STATE_FILE_NAME]
