"""The daemon as a systemd service: sd_notify readiness, status and watchdog, SIGTERM and SIGHUP.

Each test runs `assistant run --realtime` on a recording as a subprocess, as
systemd would, with NOTIFY_SOCKET pointing at a datagram socket the test binds.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import PROJECT_DIR, SAMPLE_RATE_HZ, events_named, load_clip, read_events, silence, write_wav

pytestmark = pytest.mark.models

# Upper bound for any wait on the daemon, so that a hang fails the test.
DAEMON_TIMEOUT_SECONDS = 180
# systemd's default TimeoutStopSec= is 90 s; the daemon promises far less.
STOP_DEADLINE_SECONDS = 3.0
# WATCHDOG_USEC for the daemon: pings are due every 0.5 s.
WATCHDOG_USEC = 1_000_000
PING_PERIOD_SECONDS = WATCHDOG_USEC / 1_000_000 / 2



def wake_and_command(*, tail_seconds: float = 2.0) -> list:
    """Hey Jarvis, a 0.3 s pause, a 5 s spoken sentence, then silence."""
    return [
        load_clip("wyoming_oww_hey_jarvis.16k.wav"), silence(0.3),
        load_clip("stereo_diarization.left.16k.wav"), silence(tail_seconds),
    ]


@dataclass
class Notification:
    """One sd_notify datagram, with the names of the events written to --events before it arrived."""

    fields: dict[str, str]
    events_before: list[str]


@dataclass
class NotifyListener:
    """A bound AF_UNIX datagram socket that collects notifications in a thread."""

    address: str
    events_path: Path
    notifications: list[Notification] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self.address)
        self._socket.settimeout(0.1)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="notify-listener", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        # Reading continuously matters: Linux queues at most 10 datagrams on an
        # AF_UNIX socket by default, after which the daemon's sends would block.
        while not self._closing.is_set():
            try:
                data = self._socket.recv(4096)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            names = [event["event"] for event in read_events(self.events_path)] if self.events_path.exists() else []
            self.notifications.append(Notification(fields, names))

    def wait_for(self, key: str, value: str | None = None, timeout: float = DAEMON_TIMEOUT_SECONDS) -> Notification:
        """Return the first notification that sets `key` (to `value`, if given), polling until `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for notification in list(self.notifications):
                if key in notification.fields and value in (None, notification.fields[key]):
                    return notification
            time.sleep(0.02)
        pytest.fail(f"no {key}={value or '*'} notification within {timeout} s: {self.keys()}")

    def keys(self) -> list[str]:
        return [" ".join(f"{k}={v}" for k, v in n.fields.items()) for n in self.notifications]

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=5)
        self._socket.close()


@pytest.fixture
def notify_dir() -> Iterator[Path]:
    # tempfile's default directory keeps the socket path below the 108-byte
    # sun_path limit, which pytest's deeper tmp_path can exceed.
    with tempfile.TemporaryDirectory(prefix="notify-") as directory:
        yield Path(directory)


@dataclass
class Daemon:
    """`assistant run` on a file, started as systemd would start it."""

    process: subprocess.Popen
    events_path: Path
    output_path: Path
    log_path: Path
    notify: NotifyListener | None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self) -> list[dict]:
        return read_events(self.events_path) if self.events_path.exists() else []

    def wait_for_event(self, name: str, count: int = 1, timeout: float = DAEMON_TIMEOUT_SECONDS) -> dict:
        """Poll the events file until the `count`-th event called `name` is written."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = events_named(self.events(), name)
            if len(found) >= count:
                return found[count - 1]
            if self.process.poll() is not None:
                pytest.fail(f"daemon exited with {self.process.returncode} before event {name!r}:\n{self.log()[-3000:]}")
            time.sleep(0.02)
        pytest.fail(f"no event {name!r} within {timeout} s:\n{self.log()[-3000:]}")

    def wait(self, timeout: float = DAEMON_TIMEOUT_SECONDS) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"daemon still running after {timeout} s:\n{self.log()[-3000:]}")


@pytest.fixture
def start_daemon(tmp_path, notify_dir) -> Iterator:
    started: list[Daemon] = []

    def start(input_path: Path, config_path: Path, *, notify: bool = True) -> Daemon:
        events_path = tmp_path / "events.jsonl"
        output_path = tmp_path / "reply.wav"
        log_path = tmp_path / "daemon.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        listener = None
        if notify:
            listener = NotifyListener(str(notify_dir / "notify.sock"), events_path)
            env["NOTIFY_SOCKET"] = listener.address
            env["WATCHDOG_USEC"] = str(WATCHDOG_USEC)
        command = [
            sys.executable, "-m", "assistant", "run", "--config", str(config_path), "--input", str(input_path),
            "--output", str(output_path), "--events", str(events_path), "--realtime",
        ]
        with log_path.open("w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=PROJECT_DIR)
        daemon = Daemon(process, events_path, output_path, log_path, listener)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait(timeout=10)
        if daemon.notify is not None:
            daemon.notify.close()


def write_config(path: Path, *, llm: str = "", tables: str = "") -> Path:
    """Write a configuration with `llm` lines in [llm], then the other `tables`.

    It sets one llama.cpp thread. On a 2-core machine busy with other work, two
    threads that wait for each other at every step made generation 40 times slower.
    """
    path.write_text(f"[llm]\nthreads = 1\n{llm}\n{tables}")
    return path


def sentence_count(text: str) -> int:
    return len(re.findall(r"[.!?](?:\s|$)", text))


def is_subsequence(expected: list[str], actual: list[str]) -> bool:
    remaining = iter(actual)
    return all(item in remaining for item in expected)


# --- sd_notify -------------------------------------------------------------------------


def test_notify_follows_pipeline(tmp_path, start_daemon):
    parts = wake_and_command()
    input_path = write_wav(tmp_path / "input.wav", *parts)
    input_seconds = sum(len(part) for part in parts) / SAMPLE_RATE_HZ
    daemon = start_daemon(input_path, write_config(tmp_path / "config.toml"))

    assert daemon.wait() == 0, daemon.log()[-3000:]
    daemon.notify.wait_for("STOPPING", "1", timeout=5)
    notifications = daemon.notify.notifications
    keys = daemon.notify.keys()
    ready_indexes = [i for i, n in enumerate(notifications) if "READY" in n.fields]
    loading_index = keys.index("STATUS=Loading models")
    stopping_index = len(notifications) - 1

    assert len(ready_indexes) == 1, keys
    ready_index = ready_indexes[0]
    assert loading_index < ready_index, keys
    assert "ready" in notifications[ready_index].events_before
    assert notifications[ready_index].fields.get("STATUS") == "Listening for the wake word"
    assert notifications[stopping_index].fields == {"STOPPING": "1"}, keys

    statuses = [n.fields["STATUS"] for n in notifications if "STATUS" in n.fields]
    expected = [
        "Loading models", "Listening for the wake word", "Listening to a command",
        "Thinking", "Speaking", "Listening for the wake word",
    ]
    assert is_subsequence(expected, statuses), statuses
    assert statuses[-1] == "Listening for the wake word", statuses

    pings = [i for i, n in enumerate(notifications) if n.fields == {"WATCHDOG": "1"}]
    pings_while_running = [i for i in pings if ready_index < i < stopping_index]
    # --realtime feeds the input at 1x, so the pipeline runs at least that long
    # after READY=1. Half the ideal count leaves room for a loaded machine.
    assert len(pings_while_running) >= input_seconds / PING_PERIOD_SECONDS / 2, keys
    command_start = keys.index("STATUS=Listening to a command")
    thinking = keys.index("STATUS=Thinking")
    # The 5 s command is paced at 1x: pings keep coming while it is recorded.
    assert len([i for i in pings if command_start < i < thinking]) >= 2, keys


def test_sigterm_while_loading_models(tmp_path, start_daemon):
    input_path = write_wav(tmp_path / "input.wav", *wake_and_command())
    daemon = start_daemon(input_path, write_config(tmp_path / "config.toml"))
    daemon.notify.wait_for("STATUS", "Loading models")

    daemon.process.send_signal(signal.SIGTERM)

    assert daemon.wait() == 0, daemon.log()[-3000:]
    daemon.notify.wait_for("STOPPING", "1", timeout=5)
    assert "READY=1" not in daemon.notify.keys()
    assert "Received SIGTERM, stopping" in daemon.log()


# --- SIGTERM ---------------------------------------------------------------------------


def test_sigterm_during_reply_exits_promptly(tmp_path, start_daemon):
    input_path = write_wav(tmp_path / "input.wav", *wake_and_command(tail_seconds=10.0))
    config = write_config(tmp_path / "config.toml", llm="max_tokens = 200", tables="[persona]\nmax_sentences = 10\n")
    daemon = start_daemon(input_path, config)
    daemon.wait_for_event("transcript")

    signalled = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    status = daemon.wait()
    elapsed = time.monotonic() - signalled

    assert status == 0, daemon.log()[-3000:]
    assert elapsed <= STOP_DEADLINE_SECONDS, f"exited {elapsed:.2f} s after SIGTERM"
    names = [event["event"] for event in daemon.events()]
    # The transcript came and the reply had not finished: the turn was cancelled.
    assert "interrupted" in names, names
    assert "Received SIGTERM, stopping" in daemon.log()
    daemon.notify.wait_for("STOPPING", "1", timeout=5)
    # The sink was closed: the WAV header is complete.
    with wave.open(str(daemon.output_path)) as wav:
        assert wav.getframerate() > 0


# --- SIGHUP ----------------------------------------------------------------------------


def test_sighup_applies_new_persona_to_next_reply(tmp_path, start_daemon):
    # The gap outlasts the first reply (generation, then playback paced at 1x),
    # so that the second wake word does not interrupt it.
    input_path = write_wav(
        tmp_path / "input.wav", *wake_and_command(tail_seconds=14.0), *wake_and_command(tail_seconds=2.0)
    )
    config = write_config(tmp_path / "config.toml", llm="max_tokens = 24", tables="[listen]\nfollow_up_seconds = 0\n")
    daemon = start_daemon(input_path, config)
    first_reply = daemon.wait_for_event("reply")

    write_config(
        config,
        llm="max_tokens = 3",
        tables='[listen]\nfollow_up_seconds = 0\n[persona]\nname = "Friday"\nmax_sentences = 1\n',
    )
    daemon.process.send_signal(signal.SIGHUP)
    reload = daemon.wait_for_event("reload")

    assert daemon.wait() == 0, daemon.log()[-3000:]
    events = daemon.events()
    replies = events_named(events, "reply")
    wakes = events_named(events, "wake")
    assert len(replies) == 2, replies
    assert len(wakes) == 2, wakes
    assert first_reply["time"] < reload["time"] < wakes[1]["time"]
    assert reload["config"] == str(config.resolve())
    # Persona and sampling settings apply without loading any model again.
    assert reload["models"] == []
    second = replies[1]["text"]
    # max_tokens = 3 caps the reply at 3 tokens. A reply with no words becomes the no-answer phrase.
    assert second == "Sorry, I have no answer to that." or len(second.split()) <= 3, second
    assert sentence_count(second) <= 1, second
    assert "Received SIGHUP" in daemon.log()

    keys = daemon.notify.keys()
    reloading = [i for i, key in enumerate(keys) if key.startswith("RELOADING=1")]
    assert len(reloading) == 1, keys
    assert re.fullmatch(r"RELOADING=1 MONOTONIC_USEC=\d+", keys[reloading[0]]), keys
    assert any(key.startswith("READY=1") for key in keys[reloading[0] + 1:]), keys


def test_sighup_with_invalid_file_keeps_settings(tmp_path, start_daemon):
    input_path = write_wav(tmp_path / "input.wav", *wake_and_command())
    config = write_config(tmp_path / "config.toml", llm="max_tokens = 3", tables="[persona]\nmax_sentences = 1\n")
    daemon = start_daemon(input_path, config)
    daemon.wait_for_event("ready")

    config.write_text("[persona]\nmax_sentences = 0\n[llm]\nmax_tokens = 200\n")
    daemon.process.send_signal(signal.SIGHUP)
    failure = daemon.wait_for_event("reload_failed")

    assert daemon.wait() == 0, daemon.log()[-3000:]
    events = daemon.events()
    assert events_named(events, "reload") == []
    assert "persona.max_sentences = 0" in failure["message"]
    log = daemon.log()
    assert re.search(r"ERROR .*Reloading .* failed; keeping the previous settings", log), log[-3000:]
    assert "persona.max_sentences = 0" in log

    # The daemon kept running with the old max_tokens = 3, not the 200 of the rejected file.
    wake = events_named(events, "wake")[0]
    replies = events_named(events, "reply")
    assert len(replies) == 1, events
    assert failure["time"] < wake["time"]
    reply = replies[0]["text"]
    assert reply == "Sorry, I have no answer to that." or len(reply.split()) <= 3, reply

    keys = daemon.notify.keys()
    reloading = next(i for i, key in enumerate(keys) if key.startswith("RELOADING=1"))
    assert any(key.startswith("READY=1") for key in keys[reloading + 1:]), keys
