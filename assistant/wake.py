"""Wake word detection with openWakeWord models run by pyopen-wakeword's TFLite runtime."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.audio import FRAME_SAMPLES, SAMPLE_RATE_HZ
from assistant.config import WakeSettings
from assistant.models import ModelError, resolve_wake_model

_LOGGER = logging.getLogger(__name__)

# openWakeWord classifiers take windows of speech embeddings of this many features.
_EMBEDDING_FEATURES = 96


@dataclass(frozen=True)
class WakeDetection:
    model: str
    score: float


class WakeDetector:
    """Score every frame against each configured model; one detection per utterance.

    Not thread-safe: call it from one thread at a time.
    """

    def __init__(self, settings: WakeSettings) -> None:
        from pyopen_wakeword import OpenWakeWord, OpenWakeWordFeatures

        self.settings = settings
        self.model_paths = {name: resolve_wake_model(name) for name in settings.models}
        self._features = OpenWakeWordFeatures.from_builtin()
        self._models = {}
        for name, path in self.model_paths.items():
            self._check_tflite(path)
            try:
                self._models[name] = OpenWakeWord.from_model(path)
            except (OSError, RuntimeError, ValueError) as error:
                raise RuntimeError(
                    f"cannot load wake word model {path}: {error}; download it again or check [wake] models"
                ) from error
            self._check_classifier_shape(self._models[name], path)
        self._samples_seen = 0
        self._blocked_until: dict[str, int] = {name: 0 for name in self._models}

    def _check_tflite(self, path: Path) -> None:
        """Raise ModelError unless TensorFlow Lite accepts `path` as a model.

        pyopen-wakeword 1.1.0 passes a failed load (a NULL model) on to
        TfLiteInterpreterCreate, which crashes the process with a segmentation fault.
        """
        lib = self._features.lib
        model = lib.TfLiteModelCreateFromFile(str(path).encode("utf-8"))
        if not model:
            raise ModelError(
                f"wake word model {path} is not a valid TensorFlow Lite model; the file may be truncated or "
                "corrupt, so download it again or check [wake] models"
            )
        lib.TfLiteModelDelete(model)

    def _check_classifier_shape(self, model: Any, path: Path) -> None:
        """Raise ModelError unless the model maps (1, windows, 96) embeddings to one score."""
        lib = self._features.lib
        dimensions = lib.TfLiteTensorNumDims(model.input_tensor)
        shape = tuple(lib.TfLiteTensorDim(model.input_tensor, i) for i in range(dimensions))
        scores = lib.TfLiteTensorByteSize(model.output_tensor) // np.dtype(np.float32).itemsize
        if len(shape) != 3 or shape[0] != 1 or shape[2] != _EMBEDDING_FEATURES or scores != 1:
            model.close()
            raise ModelError(
                f"{path} is not an openWakeWord classifier: its input has shape {shape} and it outputs "
                f"{scores} values, expected input (1, windows, {_EMBEDDING_FEATURES}) and 1 score; "
                "give a wake word model trained with openWakeWord"
            )

    def process(self, frame: np.ndarray) -> WakeDetection | None:
        """Feed one frame of FRAME_SAMPLES int16 samples; return a detection, if any."""
        if len(frame) != FRAME_SAMPLES:
            raise ValueError(f"wake detector expects frames of {FRAME_SAMPLES} samples, got {len(frame)}")

        self._samples_seen += len(frame)
        best: WakeDetection | None = None
        for embeddings in self._features.process_streaming(frame.astype(np.int16).tobytes()):
            for name, model in self._models.items():
                for score in model.process_streaming(embeddings):
                    if score < self.settings.threshold or self._samples_seen < self._blocked_until[name]:
                        continue
                    if best is None or score > best.score:
                        best = WakeDetection(model=name, score=float(score))

        if best is not None:
            refractory_samples = int(self.settings.refractory_seconds * SAMPLE_RATE_HZ)
            for name in self._blocked_until:
                self._blocked_until[name] = self._samples_seen + refractory_samples
        return best

    def reset(self) -> None:
        """Forget the audio history, for example after the daemon's own speech."""
        self._features.reset()
        for model in self._models.values():
            model.reset()

    def close(self) -> None:
        for model in self._models.values():
            model.close()
        self._features.close()
