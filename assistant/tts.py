"""Text to speech with a Piper voice."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from assistant.config import TtsSettings
from assistant.models import VoiceFiles, resolve_voice

_LOGGER = logging.getLogger(__name__)


class Synthesizer:
    """A loaded Piper voice. Not thread-safe: call it from one thread at a time."""

    def __init__(self, settings: TtsSettings, config_dir: Path | None = None) -> None:
        from piper import PiperVoice, SynthesisConfig

        self.settings = settings
        self.files: VoiceFiles = resolve_voice(settings.voice, config_dir)
        try:
            self._voice = PiperVoice.load(self.files.model, config_path=self.files.config)
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            raise RuntimeError(f"cannot load Piper voice {self.files.model}: {error}") from error

        speaker_id = settings.speaker_id if self._voice.config.num_speakers > 1 else None
        self._synthesis = SynthesisConfig(speaker_id=speaker_id, length_scale=settings.length_scale)

    @property
    def sample_rate_hz(self) -> int:
        return int(self._voice.config.sample_rate)

    @property
    def language(self) -> str:
        return str(self._voice.config.espeak_voice)

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """Yield int16 mono audio at sample_rate_hz, one chunk per sentence Piper finds."""
        for chunk in self._voice.synthesize(text, syn_config=self._synthesis):
            yield chunk.audio_int16_array

    def synthesize_all(self, text: str) -> np.ndarray:
        chunks = list(self.synthesize(text))
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
