"""Record the spoken command after the wake word, ending on silence (endpointing)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from assistant.audio import SAMPLE_RATE_HZ
from assistant.config import ListenSettings
from assistant.vad import WINDOW_SAMPLES, SileroVad

# Windows below threshold minus this margin count as silence; the gap keeps a
# probability that hovers around the threshold from flapping.
_SILENCE_MARGIN = 0.15
# Speech windows needed before the command counts as started (about 250 ms), so
# that the tail of the wake word or a short noise does not start a command.
_MIN_SPEECH_WINDOWS = 8
# Silence windows (about 320 ms) after which a blip of speech too short to start the
# command is forgotten.
_BLIP_GAP_WINDOWS = 10
# Audio kept after the last speech window, so that a final consonant is not cut.
_TAIL_SECONDS = 0.2


class EndReason(enum.Enum):
    SILENCE = "silence"
    END_OF_TURN = "end_of_turn"
    MAX_LENGTH = "max_length"
    NO_SPEECH = "no_speech"
    INPUT_ENDED = "input_ended"


@dataclass(frozen=True)
class Command:
    """The recorded command: samples for speech recognition and where speech sits in them."""

    samples: np.ndarray
    reason: EndReason
    #: Seconds from the wake word to the end of speech.
    speech_end_seconds: float

    @property
    def has_speech(self) -> bool:
        return self.reason is not EndReason.NO_SPEECH


class CommandRecorder:
    """Collect frames after a wake word until the speaker stops; feed() returns the command.

    Not thread-safe: call it from one thread at a time.
    """

    def __init__(self, settings: ListenSettings, vad: SileroVad) -> None:
        self.settings = settings
        self._vad = vad
        self.start()

    def start(self, pre_roll: np.ndarray | None = None, start_timeout_seconds: float | None = None) -> None:
        """Begin a command; `pre_roll` is audio heard just before the wake word fired.

        The voice activity detector reads the pre-roll first, so that it starts the
        command in its usual state, but speech inside it neither starts the command
        nor goes to speech recognition.
        `start_timeout_seconds` replaces the configured wait for speech (follow-ups).
        """
        self._start_timeout = start_timeout_seconds or self.settings.start_timeout_seconds
        self._vad.reset()
        self._chunks: list[np.ndarray] = []
        self._samples = 0
        self._windows = 0
        self._origin_samples = 0
        self._speech_windows = 0
        self._first_speech_window: int | None = None
        self._last_speech_window: int | None = None
        if pre_roll is not None and len(pre_roll):
            self._chunks.append(pre_roll)
            self._samples = self._origin_samples = len(pre_roll)
            self._windows = len(self._vad.process(pre_roll))

    @property
    def recorded_seconds(self) -> float:
        """Seconds recorded since the wake word, not counting the pre-roll."""
        return (self._samples - self._origin_samples) / SAMPLE_RATE_HZ

    def feed(self, frame: np.ndarray) -> Command | None:
        """Add one frame; return the finished command once speech has ended."""
        self._chunks.append(frame)
        self._samples += len(frame)

        threshold = self.settings.vad_threshold
        for probability in self._vad.process(frame):
            if probability >= threshold:
                self._speech_windows += 1
                if self._first_speech_window is None:
                    self._first_speech_window = self._windows
                self._last_speech_window = self._windows
            elif probability >= threshold - _SILENCE_MARGIN and self._last_speech_window == self._windows - 1:
                # Hovering just under the threshold right after speech: still speech.
                self._last_speech_window = self._windows
            elif self._speech_windows < _MIN_SPEECH_WINDOWS and self._last_speech_window is not None \
                    and self._windows - self._last_speech_window > _BLIP_GAP_WINDOWS:
                # A blip too short to start the command (the wake word's tail, a click),
                # followed by silence: forget it, so that the command starts at real speech.
                self._speech_windows = 0
                self._first_speech_window = None
                self._last_speech_window = None
            self._windows += 1

        return self._check_end()

    @property
    def trailing_silence_seconds(self) -> float:
        """Seconds of silence since the last speech window; 0 before speech started."""
        if self._speech_windows < _MIN_SPEECH_WINDOWS or self._last_speech_window is None:
            return 0.0
        return (self._windows - 1 - self._last_speech_window) * WINDOW_SAMPLES / SAMPLE_RATE_HZ

    @property
    def speech_end_window(self) -> int | None:
        """Index of the last speech window; it changes whenever the speaker goes on."""
        return self._last_speech_window

    def snapshot(self) -> Command:
        """Return the command as it would be if speech had ended at the last speech window."""
        return self._build(EndReason.END_OF_TURN)

    def finish(self) -> Command:
        """End the recording because the input ended."""
        if self._speech_windows < _MIN_SPEECH_WINDOWS:
            return self._build(EndReason.NO_SPEECH)
        return self._build(EndReason.INPUT_ENDED)

    def _check_end(self) -> Command | None:
        started = self._speech_windows >= _MIN_SPEECH_WINDOWS
        if not started:
            if self.recorded_seconds >= self._start_timeout:
                return self._build(EndReason.NO_SPEECH)
            return None

        silence_windows = self._windows - 1 - self._last_speech_window
        if silence_windows * WINDOW_SAMPLES / SAMPLE_RATE_HZ >= self.settings.silence_seconds:
            return self._build(EndReason.SILENCE)

        speech_start = (self._first_speech_window * WINDOW_SAMPLES - self._origin_samples) / SAMPLE_RATE_HZ
        if self.recorded_seconds - speech_start >= self.settings.max_seconds:
            return self._build(EndReason.MAX_LENGTH)
        return None

    def _build(self, reason: EndReason) -> Command:
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
        if reason is EndReason.NO_SPEECH or self._first_speech_window is None:
            return Command(samples=np.zeros(0, dtype=np.int16), reason=EndReason.NO_SPEECH,
                           speech_end_seconds=self.recorded_seconds)

        # The pre-roll reaches back from the start of speech, but never into the audio
        # before the wake word fired: Whisper would hear the wake phrase's tail.
        # NOTE: on one real French command, Whisper base transcribes "10 minutes" as
        # "diminute" with 0.3 s of pre-roll and correctly without it; the cause is unknown.
        pre_roll = int(self.settings.pre_roll_seconds * SAMPLE_RATE_HZ)
        begin = max(self._origin_samples, self._first_speech_window * WINDOW_SAMPLES - pre_roll)
        speech_end = (self._last_speech_window + 1) * WINDOW_SAMPLES
        end = min(len(audio), speech_end + int(_TAIL_SECONDS * SAMPLE_RATE_HZ))
        return Command(
            samples=audio[begin:end],
            reason=reason,
            speech_end_seconds=(speech_end - self._origin_samples) / SAMPLE_RATE_HZ,
        )
