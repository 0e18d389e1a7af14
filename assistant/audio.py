"""Audio formats, audio files, and the file-backed source and sink.

The pipeline works on frames of 16 kHz mono int16 samples. Every source converts
to that format at its edge; every sink takes int16 chunks at the voice's rate.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile
import soxr

_LOGGER = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16_000
FRAME_SAMPLES = 1_280  # 80 ms: the chunk size openWakeWord's features expect
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE_HZ
SAMPLE_WIDTH_BYTES = 2
INT16_FULL_SCALE = 32_767


class AudioFileError(Exception):
    """An audio file that cannot be read or written."""


class AudioSource(Protocol):
    """A stream of 16 kHz mono int16 frames of FRAME_SAMPLES samples."""

    #: True when frames arrive at the pace of real time (microphone, --realtime file).
    paced: bool

    def frames(self) -> AsyncIterator[np.ndarray]: ...

    async def close(self) -> None: ...


class AudioSink(Protocol):
    """Destination of reply audio: int16 mono chunks at a fixed sample rate."""

    async def play(self, samples: np.ndarray, sample_rate_hz: int) -> None: ...

    async def drain(self) -> None: ...

    async def stop(self) -> None: ...

    async def close(self) -> None: ...


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Convert float samples in [-1, 1] to int16, clipping what lies outside."""
    return np.clip(np.rint(samples * INT16_FULL_SCALE), -INT16_FULL_SCALE, INT16_FULL_SCALE).astype(np.int16)


def to_float32(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / INT16_FULL_SCALE


def downmix_and_resample(samples: np.ndarray, rate_hz: int) -> np.ndarray:
    """Average the channels of a (frames, channels) float array and resample it to 16 kHz."""
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if rate_hz != SAMPLE_RATE_HZ:
        mono = soxr.resample(mono, rate_hz, SAMPLE_RATE_HZ, quality="HQ")
    return mono


# Sample rates outside this range come from a damaged header, not from a recording.
MIN_FILE_RATE_HZ = 1_000
MAX_FILE_RATE_HZ = 768_000
# Frames per read when a damaged file is decoded again up to the damage.
_SALVAGE_BLOCK_FRAMES = 1_024
# Lines of libsndfile's header log (SoundFile.extra_info) for a WAV file whose data
# chunk is shorter than its header states, and for an Ogg file cut short.
_SHORT_WAV_DATA_RE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_CUT_OGG_TEXT = "Last page lacks an end-of-stream bit"
# Data sizes that streaming writers put in a WAV header before the length is known.
_STREAMED_WAV_SIZES = (0x7FFF_FFFF, 0xFFFF_FFFF)


def read_audio_file(path: str | Path) -> np.ndarray:
    """Read a WAV, FLAC or OGG file of any rate, width and channel count as 16 kHz mono int16.

    A truncated or damaged file gives the audio decoded before the damage, and a
    warning is logged. A WAV file whose header promises more frames than it contains
    gives the frames present. An Ogg file cut short gives its complete pages. A FLAC
    file gives the frames before its first undecodable frame. NaN samples in a float
    file become 0, and values beyond full scale (infinities included) are clipped.

    Raises AudioFileError when the file is missing, is not WAV, FLAC or OGG, has a
    sample rate outside MIN_FILE_RATE_HZ..MAX_FILE_RATE_HZ, or contains no decodable frame.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"audio file not found: {path}")
    try:
        with soundfile.SoundFile(str(path)) as file:
            rate_hz = file.samplerate
            if not MIN_FILE_RATE_HZ <= rate_hz <= MAX_FILE_RATE_HZ:
                raise AudioFileError(
                    f"{path} has a sample rate of {rate_hz} Hz, outside {MIN_FILE_RATE_HZ} to "
                    f"{MAX_FILE_RATE_HZ} Hz; the file is damaged or not a recording"
                )
            truncation = _describe_truncation(file.extra_info)
            samples = _read_all_frames(file, path)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioFileError(
            f"cannot decode {path}: {error}; use a WAV, FLAC or OGG file"
        ) from error
    if samples.shape[0] == 0:
        raise AudioFileError(f"{path} contains no audio samples")
    if truncation:
        _LOGGER.warning("%s is truncated (%s); using the %.2f s present", path, truncation, samples.shape[0] / rate_hz)
    samples = np.clip(np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    return to_int16(downmix_and_resample(samples, rate_hz))


def _describe_truncation(header_log: str) -> str:
    """Return why libsndfile's header log shows a file cut short, or "" when it does not."""
    short_data = _SHORT_WAV_DATA_RE.search(header_log)
    if short_data is not None and int(short_data.group(1)) not in _STREAMED_WAV_SIZES:
        return f"its header announces {short_data.group(1)} bytes of audio but it holds {short_data.group(2)}"
    if _CUT_OGG_TEXT in header_log:
        return "its last Ogg page lacks the end-of-stream mark"
    return ""


def _read_all_frames(file: soundfile.SoundFile, path: Path) -> np.ndarray:
    """Read every frame as float32 (frames, channels); after a decoding error, keep the frames before it."""
    try:
        return file.read(dtype="float32", always_2d=True)
    except soundfile.LibsndfileError as error:
        decoding_error = error

    # One read call that meets the damage returns nothing, so read again in small blocks.
    blocks = []
    with soundfile.SoundFile(str(path)) as again:
        try:
            while len(block := again.read(_SALVAGE_BLOCK_FRAMES, dtype="float32", always_2d=True)):
                blocks.append(block)
        except soundfile.LibsndfileError:
            pass
    if not blocks:
        raise decoding_error
    samples = np.concatenate(blocks)
    _LOGGER.warning(
        "%s is damaged or truncated (%s); using the %.2f s decoded before the damage, of %.2f s announced",
        path, decoding_error, samples.shape[0] / file.samplerate, file.frames / file.samplerate,
    )
    return samples


def split_frames(samples: np.ndarray) -> list[np.ndarray]:
    """Cut samples into frames of FRAME_SAMPLES, padding the last one with silence."""
    padding = (-len(samples)) % FRAME_SAMPLES
    if padding:
        samples = np.concatenate([samples, np.zeros(padding, dtype=samples.dtype)])
    return list(samples.reshape(-1, FRAME_SAMPLES))


class FileSource:
    """Frames from an audio file, read as fast as they are taken or paced at 1x."""

    def __init__(self, path: str | Path, realtime: bool = False) -> None:
        self.path = Path(path)
        self.paced = realtime
        self._samples = read_audio_file(self.path)

    @property
    def duration_seconds(self) -> float:
        return len(self._samples) / SAMPLE_RATE_HZ

    async def frames(self) -> AsyncIterator[np.ndarray]:
        start = time.monotonic()
        for index, frame in enumerate(split_frames(self._samples)):
            if self.paced:
                # Sleep until the frame's end would have been captured by a microphone.
                deadline = start + (index + 1) * FRAME_SECONDS
                await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            else:
                await asyncio.sleep(0)
            yield frame

    async def close(self) -> None:
        return None


class WavFileSink:
    """Reply audio written to a 16-bit mono WAV file at the voice's sample rate.

    With `realtime`, play() takes as long as the audio lasts, as a speaker would,
    and stop() cuts the chunk being played.
    """

    _PACING_SECONDS = 0.05

    def __init__(self, path: str | Path, sample_rate_hz: int, realtime: bool = False) -> None:
        self.path = Path(path)
        self.sample_rate_hz = sample_rate_hz
        self.realtime = realtime
        self.samples_written = 0
        self._stopped = False
        try:
            self._file = wave.open(str(self.path), "wb")
        except OSError as error:
            raise AudioFileError(f"cannot write {self.path}: {error.strerror}") from error
        self._file.setnchannels(1)
        self._file.setsampwidth(SAMPLE_WIDTH_BYTES)
        self._file.setframerate(sample_rate_hz)

    async def play(self, samples: np.ndarray, sample_rate_hz: int) -> None:
        if sample_rate_hz != self.sample_rate_hz:
            resampled = soxr.resample(to_float32(samples), sample_rate_hz, self.sample_rate_hz)
            samples = to_int16(resampled)
        samples = samples.astype(np.int16)
        if not self.realtime:
            self._write(samples)
            return

        self._stopped = False
        block = int(self.sample_rate_hz * self._PACING_SECONDS)
        start = time.monotonic()
        for offset in range(0, len(samples), block):
            if self._stopped:
                return
            self._write(samples[offset:offset + block])
            deadline = start + (offset + block) / self.sample_rate_hz
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))

    def _write(self, samples: np.ndarray) -> None:
        self._file.writeframes(samples.tobytes())
        self.samples_written += len(samples)

    async def drain(self) -> None:
        return None

    async def stop(self) -> None:
        self._stopped = True

    async def close(self) -> None:
        self._file.close()
