"""Earcons: short sounds played when the wake word is heard, when a reply is done, and on error.

The default sounds are sine tones made here: two rising tones for "wake", two
falling tones for "done", two low falling tones for "error". `[audio]
wake_sound`, `done_sound` and `error_sound` replace them with sound files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import soxr

from assistant.audio import AudioFileError, to_int16
from assistant.config import AudioSettings

EARCON_NAMES = ("wake", "done", "error")

# (frequency in Hz, duration in seconds) of each tone, played in order.
TONES: dict[str, tuple[tuple[float, float], ...]] = {
    "wake": ((660.0, 0.07), (880.0, 0.09)),
    "done": ((880.0, 0.07), (660.0, 0.09)),
    "error": ((440.0, 0.12), (330.0, 0.18)),
}
# Peak amplitude relative to full scale: audible, but below a voice's peaks.
AMPLITUDE = 0.3
FADE_SECONDS = 0.01
GAP_SECONDS = 0.03


def tone_sequence(tones: tuple[tuple[float, float], ...], sample_rate_hz: int) -> np.ndarray:
    """Return the tones, each faded in and out with a raised cosine and followed by a short gap, as int16."""
    fade = int(FADE_SECONDS * sample_rate_hz)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade))
    gap = np.zeros(int(GAP_SECONDS * sample_rate_hz), dtype=np.float32)
    parts = []
    for frequency_hz, seconds in tones:
        t = np.arange(int(seconds * sample_rate_hz)) / sample_rate_hz
        tone = AMPLITUDE * np.sin(2 * np.pi * frequency_hz * t)
        tone[:fade] *= ramp
        tone[-fade:] *= ramp[::-1]
        parts.extend([tone.astype(np.float32), gap])
    return to_int16(np.concatenate(parts[:-1]))


def read_sound_file(path: Path, sample_rate_hz: int) -> np.ndarray:
    """Read a sound file as int16 mono at `sample_rate_hz`, averaging its channels."""
    try:
        samples, file_rate_hz = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioFileError(f"cannot decode earcon {path}: {error}; use a WAV, FLAC or OGG file") from error
    if samples.shape[0] == 0:
        raise AudioFileError(f"earcon {path} contains no audio samples")
    mono = np.ascontiguousarray(samples.mean(axis=1))
    if file_rate_hz != sample_rate_hz:
        mono = soxr.resample(mono, file_rate_hz, sample_rate_hz)
    return to_int16(mono)


class Earcons:
    """The earcons, made or read once at start, at the sample rate of the voice."""

    def __init__(self, settings: AudioSettings, base_dir: Path, sample_rate_hz: int) -> None:
        self.sample_rate_hz = sample_rate_hz
        self._sounds: dict[str, np.ndarray] = {}
        for name in EARCON_NAMES:
            custom = getattr(settings, f"{name}_sound")
            if custom:
                path = (base_dir / Path(custom).expanduser()).resolve()
                if not path.is_file():
                    raise AudioFileError(f"earcon file not found: {path}; fix or empty [audio] {name}_sound")
                self._sounds[name] = read_sound_file(path, sample_rate_hz)
            else:
                self._sounds[name] = tone_sequence(TONES[name], sample_rate_hz)

    def sound(self, name: str) -> tuple[np.ndarray, int] | None:
        """Return the samples and rate of earcon `name` ("wake", "done" or "error"), or None if unknown."""
        samples = self._sounds.get(name)
        return None if samples is None else (samples, self.sample_rate_hz)


def load_earcons(settings: AudioSettings, base_dir: Path, sample_rate_hz: int) -> Earcons | None:
    """Return the earcons, or None when `[audio] earcons` is off."""
    return Earcons(settings, base_dir, sample_rate_hz) if settings.earcons else None
