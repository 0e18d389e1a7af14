"""The daemon end to end on real recordings and the embedded models, from file to file."""

from __future__ import annotations

import re
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from conftest import (
    PROJECT_DIR,
    audio_path,
    events_named,
    load_clip,
    read_events,
    run_assistant,
    silence,
    transcribe_speech,
    write_wav,
)

pytestmark = pytest.mark.models

CONFIG = str(PROJECT_DIR / "config.toml")


def run_files(tmp_path: Path, input_path: Path, *extra: str, prefix: list[str] | None = None):
    output = tmp_path / "reply.wav"
    events = tmp_path / "events.jsonl"
    process = run_assistant(
        "run", "--config", CONFIG, "--input", str(input_path), "--output", str(output),
        "--events", str(events), *extra, prefix=prefix,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    return read_events(events), output, process


def words(text: str) -> set[str]:
    return {word for word in re.findall(r"[a-z']+", text.lower()) if len(word) > 2}


@pytest.fixture(scope="module")
def wake_and_command(tmp_path_factory):
    """Hey Jarvis, a pause, a spoken sentence, silence: run once under strace if it is installed."""
    tmp_path = tmp_path_factory.mktemp("wake_and_command")
    input_path = write_wav(
        tmp_path / "input.wav",
        load_clip("wyoming_oww_hey_jarvis.16k.wav"), silence(0.3),
        load_clip("stereo_diarization.left.16k.wav"), silence(2.0),
    )
    trace = tmp_path / "syscalls.txt"
    prefix = None
    if shutil.which("strace"):
        prefix = ["strace", "-f", "--seccomp-bpf", "-e", "trace=socket,connect", "-o", str(trace)]
    events, output, process = run_files(tmp_path, input_path, prefix=prefix)
    return events, output, trace if prefix else None


def test_one_wake_for_hey_jarvis(wake_and_command):
    events, _, _ = wake_and_command
    wakes = events_named(events, "wake")
    assert [wake["model"] for wake in wakes] == ["hey_jarvis"]


def test_wake_reported_inside_the_wake_clip(wake_and_command):
    events, _, _ = wake_and_command
    wake = events_named(events, "wake")[0]
    assert 0.5 < wake["audio_time"] < 2.3


def test_transcript_holds_the_command(wake_and_command):
    events, _, _ = wake_and_command
    transcripts = events_named(events, "transcript")
    assert len(transcripts) == 1
    assert "a confused complaint against the wizard" in transcripts[0]["text"].lower()
    assert transcripts[0]["language"] == "en"


def test_reply_is_not_empty(wake_and_command):
    events, _, _ = wake_and_command
    replies = events_named(events, "reply")
    assert len(replies) == 1
    assert replies[0]["text"].strip()


def test_events_in_pipeline_order(wake_and_command):
    events, _, _ = wake_and_command
    names = [event["event"] for event in events]
    assert names[0] == "ready"
    order = [names.index(name) for name in ("ready", "wake", "speech_end", "transcript", "audio_start", "reply")]
    assert order == sorted(order)
    assert names[-1] == "idle"
    times = [event["time"] for event in events]
    assert times == sorted(times)


def test_speech_end_after_the_spoken_sentence(wake_and_command):
    events, _, _ = wake_and_command
    speech_end = events_named(events, "speech_end")[0]
    # The sentence ends 2.0 + 0.3 + about 4.9 s into the input. Its words form a
    # finished utterance, so the end-of-turn check ends the command before the
    # long silence timeout.
    assert speech_end["reason"] == "end_of_turn"
    assert 6.8 < speech_end["audio_time"] < 7.6


def test_output_wav_speaks_the_reply(wake_and_command, transcriber):
    events, output, _ = wake_and_command
    with wave.open(str(output)) as wav:
        assert wav.getframerate() == 22_050
        assert wav.getnchannels() == 1
        assert wav.getnframes() > 22_050 // 2
    samples, _ = soundfile.read(output, dtype="int16")
    spoken = transcribe_speech(transcriber, samples, 22_050)
    reply = events_named(events, "reply")[0]["text"]
    common = words(spoken) & words(reply)
    assert len(common) >= max(1, len(words(reply)) // 2), (spoken, reply)


def test_no_network_socket_opened(wake_and_command):
    _, _, trace = wake_and_command
    if trace is None:
        pytest.skip("strace is not installed; scripts/setup.sh --test installs it")
    syscalls = trace.read_text()
    assert "+++ exited with 0 +++" in syscalls
    assert "AF_INET" not in syscalls, syscalls[-2000:]


def test_speech_without_wake_word_is_ignored(tmp_path):
    events, output, _ = run_files(tmp_path, audio_path("jfk.16k.wav"))
    assert events_named(events, "wake") == []
    assert events_named(events, "reply") == []
    with wave.open(str(output)) as wav:
        assert wav.getnframes() == 0


def test_other_wake_word_is_ignored(tmp_path):
    events, _, _ = run_files(tmp_path, audio_path("picovoice_alexa_100.16k.wav"))
    assert events_named(events, "wake") == []


def test_wake_then_flac_at_44k_stereo_24bit(tmp_path):
    jfk, rate = soundfile.read(audio_path("jfk.flac"), dtype="float32", always_2d=True)
    assert (rate, jfk.shape[1]) == (44_100, 2)
    wake = soxr.resample(load_clip("wyoming_oww_hey_jarvis.16k.wav").astype(np.float32) / 32768, 16_000, rate)
    wake_stereo = np.stack([wake, wake], axis=1)
    gap = np.zeros((int(0.3 * rate), 2), dtype=np.float32)
    tail = np.zeros((int(2.0 * rate), 2), dtype=np.float32)
    input_path = tmp_path / "wake_jfk.flac"
    soundfile.write(input_path, np.concatenate([wake_stereo, gap, jfk, tail]), rate, subtype="PCM_24")

    events, _, _ = run_files(tmp_path, input_path)

    assert [wake["model"] for wake in events_named(events, "wake")] == ["hey_jarvis"]
    transcript = events_named(events, "transcript")[0]["text"]
    assert transcript.lower().startswith("and so my fellow americans"), transcript


def test_realtime_paces_input(tmp_path):
    input_path = write_wav(
        tmp_path / "input.wav", silence(1.0), load_clip("wyoming_oww_hey_jarvis.16k.wav"), silence(1.0)
    )
    events, _, _ = run_files(tmp_path, input_path, "--realtime")
    ready = events_named(events, "ready")[0]
    wake = events_named(events, "wake")[0]
    # Paced at 1x, a frame cannot be processed before it would have been captured.
    assert wake["time"] - ready["time"] >= wake["audio_time"] - 0.05
    assert events[-1]["time"] - ready["time"] >= 4.0 - 0.05
