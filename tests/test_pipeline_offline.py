"""The whole file pipeline in this process with pytest-socket blocking every network socket.

This guard is the test's own, independent of the daemon's guard in
assistant.offline. pytest-socket replaces Python's socket class and name
lookups, so it intercepts only sockets made from Python. Sockets that native
threads open (the onnxruntime telemetry, for example) are covered by the strace
test in test_pipeline_files.py instead.
"""

from __future__ import annotations

import asyncio
import socket
import warnings

import pytest
import pytest_socket

from assistant.audio import FileSource, WavFileSink
from assistant.config import load_settings
from assistant.events import EventLog
from assistant.offline import OFFLINE_ENVIRONMENT
from assistant.pipeline import Pipeline
from assistant.stages import Models
from conftest import PROJECT_DIR, events_named, load_clip, read_events, silence, write_wav

pytestmark = pytest.mark.models

LOAD_TIMEOUT_SECONDS = 120
RUN_TIMEOUT_SECONDS = 180


async def run_pipeline(input_path, output_path, events_path) -> None:
    """Build and run the pipeline as commands.run_daemon does, with a bound on every wait."""
    settings, config_path = load_settings(PROJECT_DIR / "config.toml")
    models = await asyncio.wait_for(
        asyncio.to_thread(Models.load, settings, config_path.parent), LOAD_TIMEOUT_SECONDS
    )
    source = FileSource(input_path)
    sink = WavFileSink(output_path, models.tts.sample_rate_hz)
    events = EventLog(events_path)
    try:
        # The guard is active inside the event loop too.
        with pytest.raises(pytest_socket.SocketBlockedError):
            socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        pipeline = Pipeline(settings, models, source, sink, events)
        await asyncio.wait_for(pipeline.run(), RUN_TIMEOUT_SECONDS)
    finally:
        await sink.close()
        await source.close()
        events.close()


def test_pipeline_replies_with_sockets_blocked(tmp_path, monkeypatch):
    for name, value in OFFLINE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    input_path = write_wav(
        tmp_path / "input.wav",
        load_clip("wyoming_oww_hey_jarvis.16k.wav"), silence(0.3),
        load_clip("stereo_diarization.left.16k.wav"), silence(2.0),
    )
    events_path = tmp_path / "events.jsonl"

    # asyncio wakes its event loop through an AF_UNIX socket pair, so Unix sockets stay allowed.
    pytest_socket.disable_socket(allow_unix_socket=True)
    try:
        # SocketBlockedError also issues a warning, which is recorded even when
        # a library catches the error itself and carries on.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            asyncio.run(run_pipeline(input_path, tmp_path / "reply.wav", events_path))
    finally:
        pytest_socket.enable_socket()

    blocked = [str(warning.message) for warning in caught if "tried to use socket" in str(warning.message)]
    # The one expected entry is the check inside run_pipeline that the guard is on.
    assert blocked == ["A test tried to use socket.socket."], blocked
    events = read_events(events_path)
    assert [wake["model"] for wake in events_named(events, "wake")] == ["hey_jarvis"]
    replies = events_named(events, "reply")
    assert len(replies) == 1, events
    assert replies[0]["text"].strip()
    assert events_named(events, "error") == []
