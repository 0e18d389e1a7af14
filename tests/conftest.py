"""Shared fixtures: the real recordings, and running the `assistant` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

PROJECT_DIR = Path(__file__).resolve().parents[1]
AUDIO_DIR = PROJECT_DIR.parent / "shared" / "data" / "audio"
SAMPLE_RATE_HZ = 16_000


def audio_path(name: str) -> Path:
    path = AUDIO_DIR / name
    if not path.is_file():
        pytest.fail(f"test recording missing: {path}")
    return path


def load_clip(name: str) -> np.ndarray:
    """Return a 16 kHz mono recording as int16."""
    samples, rate = soundfile.read(audio_path(name), dtype="int16")
    assert rate == SAMPLE_RATE_HZ
    return samples


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE_HZ), dtype=np.int16)


def write_wav(path: Path, *parts: np.ndarray) -> Path:
    soundfile.write(path, np.concatenate(parts), SAMPLE_RATE_HZ, subtype="PCM_16")
    return path


def transcribe_speech(transcriber, samples: np.ndarray, rate_hz: int) -> str:
    """Return what Whisper hears in int16 speech at `rate_hz`, as lowercase text."""
    resampled = soxr.resample(samples.astype(np.float32), rate_hz, SAMPLE_RATE_HZ)
    return transcriber.transcribe(resampled.astype(np.int16)).text.lower()


def run_assistant(*args: str, timeout: float = 300, env: dict[str, str] | None = None,
                  prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m assistant ARGS` and return the finished process with its output."""
    command = [*(prefix or []), sys.executable, "-m", "assistant", *args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=PROJECT_DIR)


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def events_named(events: list[dict], name: str) -> list[dict]:
    return [event for event in events if event["event"] == name]


@pytest.fixture(scope="session")
def transcriber():
    """The embedded tiny.en Whisper, loaded once, to check the daemon's speech."""
    from assistant.config import SttSettings
    from assistant.stt import Transcriber

    return Transcriber(SttSettings())


@pytest.fixture(autouse=True)
def isolated_config(tmp_path_factory, monkeypatch):
    """Keep a user's own configuration out of the tests; share one model cache."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("ASSISTANT_CONFIG", raising=False)
    for name in list(os.environ):
        if name.startswith("ASSISTANT_") and name != "ASSISTANT_CACHE_DIR":
            monkeypatch.delenv(name, raising=False)
