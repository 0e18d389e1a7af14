"""Audio files of every common format become the same 16 kHz mono int16 samples."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import soxr

from assistant.audio import FRAME_SAMPLES, AudioFileError, read_audio_file, split_frames
from conftest import (
    PROJECT_DIR,
    audio_path,
    events_named,
    load_clip,
    read_events,
    run_assistant,
    silence,
    write_wav,
)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    length = min(len(a), len(b))
    a = a[:length].astype(np.float64)
    b = b[:length].astype(np.float64)
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_flac_44k_stereo_24bit_matches_16k_copy():
    converted = read_audio_file(audio_path("jfk.flac"))
    reference = load_clip("jfk.16k.wav")
    assert abs(len(converted) - len(reference)) <= 2
    assert correlation(converted, reference) > 0.99


def test_ogg_matches_16k_copy():
    converted = read_audio_file(audio_path("fleurs_fr_005.ogg"))
    reference = load_clip("fleurs_fr_005.16k.wav")
    assert correlation(converted, reference) > 0.95


RATES = [8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000]
# (container, subtype, rates): FLAC has no float subtype, and libsndfile writes
# Opus only at the rates Opus supports.
ENCODINGS = [
    ("WAV", "PCM_U8", RATES),
    ("WAV", "PCM_16", RATES),
    ("WAV", "PCM_24", RATES),
    ("WAV", "PCM_32", RATES),
    ("WAV", "FLOAT", RATES),
    ("WAV", "DOUBLE", RATES),
    ("FLAC", "PCM_S8", RATES),
    ("FLAC", "PCM_16", RATES),
    ("FLAC", "PCM_24", RATES),
    ("OGG", "VORBIS", RATES),
    ("OGG", "OPUS", [8_000, 16_000, 48_000]),
]
LOSSY = {"VORBIS", "OPUS"}
EIGHT_BIT = {"PCM_U8", "PCM_S8"}


def minimum_correlation(subtype: str, rate: int) -> float:
    """Return how closely a converted copy must match: lossy codecs and 8-bit samples add noise."""
    if subtype in LOSSY:
        return 0.95
    if subtype in EIGHT_BIT:
        return 0.95
    # An 8 kHz copy loses everything above 4 kHz; the rest must match closely.
    return 0.98 if rate == 8_000 else 0.99


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize(
    ("container", "subtype", "rate"),
    [(container, subtype, rate) for container, subtype, rates in ENCODINGS for rate in rates],
)
def test_any_format_rate_width_channels(tmp_path, container, subtype, rate, channels):
    reference = load_clip("wyoming_oww_hey_jarvis.16k.wav")
    signal = soxr.resample(reference.astype(np.float32) / 32768, 16_000, rate)
    if channels == 2:
        signal = np.stack([signal, signal], axis=1)
    path = tmp_path / f"clip_{rate}_{subtype}_{channels}.{container.lower()}"
    soundfile.write(path, signal, rate, format=container, subtype=subtype)

    converted = read_audio_file(path)

    assert converted.dtype == np.int16
    assert converted.ndim == 1
    assert abs(len(converted) - len(reference)) <= 16_000 // rate + 2
    assert correlation(converted, reference) > minimum_correlation(subtype, rate)


def test_empty_file_is_rejected(tmp_path):
    path = tmp_path / "empty.wav"
    soundfile.write(path, np.zeros(0, dtype=np.int16), 16_000)
    with pytest.raises(AudioFileError, match="contains no audio"):
        read_audio_file(path)


def test_corrupt_file_is_rejected(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(AudioFileError, match="cannot decode"):
        read_audio_file(path)


def test_missing_file_is_rejected(tmp_path):
    with pytest.raises(AudioFileError, match="not found"):
        read_audio_file(tmp_path / "nope.flac")


def test_frames_are_padded_to_full_size():
    frames = split_frames(np.ones(FRAME_SAMPLES * 2 + 5, dtype=np.int16))
    assert len(frames) == 3
    assert all(len(frame) == FRAME_SAMPLES for frame in frames)
    assert frames[2][5:].sum() == 0


# --- damaged files ---------------------------------------------------------------------


def write_cut(tmp_path, name: str, samples: np.ndarray, fraction: float, **options) -> tuple:
    """Write `samples` at 16 kHz, then keep only the first `fraction` of the file's bytes."""
    path = tmp_path / name
    soundfile.write(path, samples, 16_000, **options)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path, len(data)


def test_wav_shorter_than_header_keeps_frames(tmp_path, caplog):
    reference = load_clip("jfk.16k.wav")
    path, full_size = write_cut(tmp_path, "cut.wav", reference, 0.5, subtype="PCM_16")
    frames_present = (path.stat().st_size - 44) // 2

    converted = read_audio_file(path)

    assert len(converted) == frames_present
    assert np.abs(converted.astype(np.int32) - reference[:frames_present]).max() <= 1
    assert f"{path} is truncated (its header announces {full_size - 44} bytes of audio" in caplog.text


def test_flac_cut_in_half_keeps_start(tmp_path, caplog):
    reference = load_clip("jfk.16k.wav")
    path, _ = write_cut(tmp_path, "cut.flac", reference, 0.5, subtype="PCM_16")

    converted = read_audio_file(path)

    # FLAC compresses some passages better than others, so half the bytes is not
    # exactly half the frames. Decoding stops within the frame the cut falls in.
    assert 0.4 * len(reference) < len(converted) < 0.6 * len(reference)
    assert np.abs(converted.astype(np.int32) - reference[: len(converted)]).max() <= 1
    assert f"{path} is damaged or truncated" in caplog.text
    assert "of 11.00 s announced" in caplog.text


def test_ogg_cut_in_half_keeps_pages(tmp_path, caplog):
    reference = load_clip("jfk.16k.wav")
    path, _ = write_cut(tmp_path, "cut.ogg", reference, 0.5, format="OGG", subtype="VORBIS")

    converted = read_audio_file(path)

    assert 0.4 * len(reference) < len(converted) < 0.6 * len(reference)
    assert correlation(converted, reference[: len(converted)]) > 0.95
    assert f"{path} is truncated (its last Ogg page lacks the end-of-stream mark)" in caplog.text


def test_whole_file_gives_no_warning(tmp_path, caplog):
    path = tmp_path / "whole.flac"
    soundfile.write(path, load_clip("jfk.16k.wav"), 16_000)
    read_audio_file(path)
    assert "truncated" not in caplog.text


@pytest.mark.parametrize(
    ("name", "content"),
    [
        pytest.param("zero.wav", b"", id="zero bytes"),
        pytest.param("header.flac", None, id="FLAC header only"),
        pytest.param("text.ogg", b"OggS this is text, not an Ogg stream", id="text behind an Ogg magic"),
    ],
)
def test_undecodable_file_is_rejected(tmp_path, name, content):
    path = tmp_path / name
    if content is None:
        soundfile.write(path, load_clip("jfk.16k.wav"), 16_000)
        content = path.read_bytes()[:100]
    path.write_bytes(content)
    with pytest.raises(AudioFileError, match=f"cannot decode {path}: .*; use a WAV, FLAC or OGG file"):
        read_audio_file(path)


def test_implausible_sample_rate_is_rejected(tmp_path):
    path = tmp_path / "slow.wav"
    soundfile.write(path, np.zeros(1_000, dtype=np.int16), 500)
    with pytest.raises(AudioFileError, match=r"has a sample rate of 500 Hz, outside 1000 to 768000 Hz"):
        read_audio_file(path)


def test_float_nan_and_infinity_replaced(tmp_path):
    path = tmp_path / "float.wav"
    samples = np.array([0.5, np.nan, np.inf, -np.inf, -0.5] * 320, dtype=np.float32)
    soundfile.write(path, samples, 16_000, subtype="FLOAT")

    converted = read_audio_file(path)

    assert converted[:5].tolist() == [16_384, 0, 32_767, -32_767, -16_384]


# --- a long file through the daemon ----------------------------------------------------


@pytest.mark.models
def test_long_file_gives_one_wake(tmp_path):
    # About 40 s of French and English speech, four times openWakeWord's 10 s
    # buffer, before "hey Jarvis" and the command.
    speech = [load_clip(name) for name in
              ("fleurs_fr_003.16k.wav", "fleurs_fr_005.16k.wav", "fleurs_fr_007.16k.wav", "jfk.16k.wav")]
    command = [load_clip("wyoming_oww_hey_jarvis.16k.wav"), silence(0.3),
               load_clip("stereo_diarization.left.16k.wav"), silence(2.0)]
    input_path = write_wav(tmp_path / "long.wav", *speech, *command)
    speech_seconds = sum(len(clip) for clip in speech) / 16_000
    assert speech_seconds > 39
    events_path = tmp_path / "events.jsonl"

    process = run_assistant(
        "run", "--config", str(PROJECT_DIR / "config.toml"), "--input", str(input_path),
        "--output", str(tmp_path / "out.wav"), "--events", str(events_path),
        env={"ASSISTANT_LISTEN__FOLLOW_UP_SECONDS": "0"}, timeout=300,
    )

    assert process.returncode == 0, process.stderr[-3000:]
    events = read_events(events_path)
    wakes = events_named(events, "wake")
    assert len(wakes) == 1
    assert wakes[0]["audio_time"] > speech_seconds
    transcripts = events_named(events, "transcript")
    assert len(transcripts) == 1
    assert "a confused complaint against the wizard" in transcripts[0]["text"].lower()
    assert len(events_named(events, "reply")) == 1
