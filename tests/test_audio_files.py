"""Audio files of every common format become the same 16 kHz mono int16 samples."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import soxr

from assistant.audio import FRAME_SAMPLES, AudioFileError, read_audio_file, split_frames
from conftest import audio_path, load_clip


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


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT"])
@pytest.mark.parametrize("channels", [1, 2])
def test_wav_any_rate_width_channels(tmp_path, rate, subtype, channels):
    if subtype == "PCM_U8" and rate != 8_000:
        pytest.skip("8-bit is checked at 8 kHz only")
    reference = load_clip("wyoming_oww_hey_jarvis.16k.wav")
    signal = soxr.resample(reference.astype(np.float32) / 32768, 16_000, rate)
    if channels == 2:
        signal = np.stack([signal, signal], axis=1)
    path = tmp_path / f"clip_{rate}_{subtype}_{channels}.wav"
    soundfile.write(path, signal, rate, subtype=subtype)

    converted = read_audio_file(path)

    assert converted.dtype == np.int16
    assert abs(len(converted) - len(reference)) <= 16_000 // rate + 2
    # An 8 kHz copy loses everything above 4 kHz; the rest must match closely.
    assert correlation(converted, reference) > (0.85 if rate == 8_000 else 0.99)


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
