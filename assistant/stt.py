"""Speech to text with faster-whisper (CTranslate2), from local model folders only."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.audio import to_float32
from assistant.config import SttSettings
from assistant.models import resolve_whisper

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    #: Whisper's probability that the audio holds no speech, highest over the segments.
    no_speech_probability: float


class Transcriber:
    """A loaded Whisper model. Not thread-safe: call it from one thread at a time."""

    def __init__(self, settings: SttSettings, threads: int = 0) -> None:
        from faster_whisper import WhisperModel

        self.settings = settings
        self.model_path: Path = resolve_whisper(settings.model)
        try:
            self._model = WhisperModel(
                str(self.model_path),
                device="cpu",
                compute_type=settings.compute_type,
                cpu_threads=threads or (os.cpu_count() or 1),
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as error:
            raise RuntimeError(f"cannot load Whisper model {self.model_path}: {error}") from error

    @property
    def multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    def transcribe(self, samples: np.ndarray) -> Transcript:
        """Transcribe 16 kHz mono int16 samples in the configured language."""
        language = None if self.settings.language == "auto" else self.settings.language
        if language not in (None, "en") and not self.multilingual:
            raise RuntimeError(
                f"Whisper model {self.model_path} understands English only but [stt] language is "
                f"{language!r}; set [stt] model = \"base\" or another multilingual model"
            )

        segments, info = self._model.transcribe(
            to_float32(samples),
            language=language,
            beam_size=self.settings.beam_size,
            condition_on_previous_text=False,
            vad_filter=False,
            without_timestamps=True,
        )
        segments = list(segments)
        text = " ".join(segment.text.strip() for segment in segments).strip()
        no_speech = max((segment.no_speech_prob for segment in segments), default=1.0)
        return Transcript(text=text, language=info.language, no_speech_probability=no_speech)
