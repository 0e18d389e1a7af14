"""Text to speech with a Piper voice."""

from __future__ import annotations

import ctypes
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import TtsSettings
from assistant.models import VoiceFiles, resolve_voice

_LOGGER = logging.getLogger(__name__)


class Synthesizer:
    """A loaded Piper voice. Not thread-safe: call it from one thread at a time."""

    def __init__(self, settings: TtsSettings, config_dir: Path | None = None) -> None:
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, InvalidGraph, InvalidProtobuf
        from piper import SynthesisConfig

        # onnxruntime's own exceptions, raised for a damaged .onnx file, derive from Exception only.
        load_errors = (OSError, ValueError, KeyError, RuntimeError, Fail, InvalidArgument, InvalidGraph, InvalidProtobuf)

        self.settings = settings
        self.files: VoiceFiles = resolve_voice(settings.voice, config_dir)
        try:
            self._voice = _load_voice(self.files)
        except load_errors as error:
            raise RuntimeError(
                f"cannot load Piper voice {self.files.model}: {error}; the .onnx or .onnx.json file may be "
                "truncated or corrupt, so download both again or set [tts] voice to 'en_US-joe-medium'"
            ) from error

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
        try:
            for chunk in self._voice.synthesize(text, syn_config=self._synthesis):
                yield chunk.audio_int16_array
        finally:
            _release_free_memory()

    def synthesize_all(self, text: str) -> np.ndarray:
        chunks = list(self.synthesize(text))
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


def _load_voice(files: VoiceFiles) -> Any:
    """Load a Piper voice whose ONNX session returns its buffers after each run.

    onnxruntime's default memory arena keeps the largest buffers it has needed,
    which grew the daemon by about 250 MB over 40 sentences of varied length.
    Without the arena, and with free memory handed back to the system after each
    synthesis, the voice stays near its loaded size, for about 30% more
    synthesis time (measured on 2 cores).
    """
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    with files.config.open(encoding="utf-8") as config_file:
        config = PiperConfig.from_dict(json.load(config_file))
    options = onnxruntime.SessionOptions()
    options.enable_cpu_mem_arena = False
    session = onnxruntime.InferenceSession(str(files.model), sess_options=options, providers=["CPUExecutionProvider"])
    return PiperVoice(config=config, session=session)


def _release_free_memory() -> None:
    """Return freed heap memory to the system (glibc only; elsewhere nothing happens)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _find_libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - present in glibc, missing in musl
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _find_libc()
