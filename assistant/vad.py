"""Streaming voice activity detection with the Silero model that faster-whisper ships."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assistant.audio import SAMPLE_RATE_HZ, to_float32

WINDOW_SAMPLES = 512  # 32 ms: the window Silero VAD is trained on at 16 kHz
CONTEXT_SAMPLES = 64  # samples of the previous window given to the model before each window
WINDOW_SECONDS = WINDOW_SAMPLES / SAMPLE_RATE_HZ
_STATE_SHAPE = (1, 1, 128)


def silero_model_path() -> Path:
    import faster_whisper

    return Path(faster_whisper.__file__).resolve().parent / "assets" / "silero_vad_v6.onnx"


class SileroVad:
    """Speech probability for each 32 ms window of a 16 kHz stream, keeping the model's state.

    Not thread-safe: call it from one thread at a time.
    """

    def __init__(self, model_path: Path | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.log_severity_level = 4
        self.model_path = model_path or silero_model_path()
        self._session = onnxruntime.InferenceSession(
            str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def process(self, samples: np.ndarray) -> list[float]:
        """Feed int16 samples of any length; return one probability per completed window."""
        self._pending = np.concatenate([self._pending, to_float32(samples)])
        probabilities = []
        while len(self._pending) >= WINDOW_SAMPLES:
            window = self._pending[:WINDOW_SAMPLES]
            self._pending = self._pending[WINDOW_SAMPLES:]
            model_input = np.concatenate([self._context, window])[np.newaxis, :]
            output, self._h, self._c = self._session.run(
                None, {"input": model_input, "h": self._h, "c": self._c}
            )
            self._context = window[-CONTEXT_SAMPLES:]
            probabilities.append(float(np.asarray(output).reshape(-1)[0]))
        return probabilities
