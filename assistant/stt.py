"""Speech to text with faster-whisper (CTranslate2), from local model folders only."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.audio import to_float32
from assistant.config import SttSettings
from assistant.models import ModelError, resolve_whisper

_LOGGER = logging.getLogger(__name__)


# Phrases Whisper is known to make up from silence, noise or music, because its
# training data held many subtitled videos; normalized (lowercase, no punctuation).
KNOWN_HALLUCINATIONS = frozenset(
    {
        "thank you", "thank you very much", "thanks", "thanks for watching", "thank you for watching",
        "thank you so much for watching", "please subscribe", "subscribe", "bye", "bye bye", "you",
        "the end", "so", "okay", "oh", "hmm", "um", "uh", "silence", "music", "applause",
        "subtitles by the amaraorg community", "merci", "merci davoir regardé", "merci de votre attention",
        "sous-titres réalisés par la communauté damaraorg", "sous-titrage st 501", "abonnez-vous",
    }
)  # fmt: skip
# Whisper marks non-speech sounds in brackets or with music notes.
_NON_SPEECH_RE = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|[♪♫♬]+")
# A known phrase is kept only with this much confidence that it was really spoken.
_KEEP_KNOWN_MAX_NO_SPEECH = 0.1
_KEEP_KNOWN_MIN_LOGPROB = -0.5


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    #: Whisper's probability that the audio contains no speech, highest over the segments.
    no_speech_probability: float
    #: Mean log probability of the tokens, lowest over the segments (0 is certain).
    avg_logprob: float = 0.0
    #: Text Whisper returned that was dropped as a likely hallucination.
    dropped: str = ""


def normalize_for_matching(text: str) -> str:
    text = re.sub(r"[^\w\s-]", "", text.lower().replace("’", "'").replace("'", ""))
    return " ".join(text.split())


def drop_hallucination(transcript: Transcript) -> Transcript:
    """Return the transcript with its text removed when it is most likely made up.

    Sound descriptions ("[music]", "♪") always go; a phrase from KNOWN_HALLUCINATIONS
    stays only when Whisper was confident that speech was there.
    """
    text = " ".join(_NON_SPEECH_RE.sub(" ", transcript.text).split())
    confident = (
        transcript.no_speech_probability <= _KEEP_KNOWN_MAX_NO_SPEECH
        and transcript.avg_logprob >= _KEEP_KNOWN_MIN_LOGPROB
    )
    if normalize_for_matching(text) in KNOWN_HALLUCINATIONS and not confident:
        text = ""
    if not any(character.isalnum() for character in text):
        text = ""
    if text == transcript.text:
        return transcript
    _LOGGER.info("Dropped likely hallucination %r (no speech %.2f, log probability %.2f)",
                 transcript.text, transcript.no_speech_probability, transcript.avg_logprob)
    return Transcript(
        text=text,
        language=transcript.language,
        no_speech_probability=transcript.no_speech_probability,
        avg_logprob=transcript.avg_logprob,
        dropped=transcript.text,
    )


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
            raise RuntimeError(
                f"cannot load Whisper model {self.model_path}: {error}; its model.bin may be truncated or "
                "corrupt, so convert or copy the model again or set [stt] model to 'tiny.en' or 'base'"
            ) from error
        self.check_language()

    @property
    def multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    def check_language(self) -> None:
        """Raise ModelError when the model cannot transcribe the configured [stt] language."""
        language = self.settings.language
        if language == "auto" or language in self._model.supported_languages:
            return
        if not self.multilingual:
            raise ModelError(
                f"Whisper model {self.model_path} understands English only but [stt] language is "
                f"{language!r}; set [stt] model = \"base\" or another multilingual model"
            )
        raise ModelError(
            f"Whisper model {self.model_path} does not support [stt] language {language!r}; set it to \"auto\" "
            f"or one of: {', '.join(self._model.supported_languages)}"
        )

    def transcribe(self, samples: np.ndarray) -> Transcript:
        """Transcribe 16 kHz mono int16 samples in the configured language."""
        # Checked again here because a reload may change the language without loading the model again.
        self.check_language()
        language = None if self.settings.language == "auto" else self.settings.language

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
        logprob = min((segment.avg_logprob for segment in segments), default=-10.0)
        transcript = Transcript(text=text, language=info.language, no_speech_probability=no_speech, avg_logprob=logprob)
        return drop_hallucination(transcript)
