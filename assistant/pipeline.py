"""The voice pipeline: wake word, command recording, transcription, reply and speech.

One asyncio task reads frames from the audio source. Every model call runs in a
thread of its own stage, so one model is never used by two threads at once and
the event loop never blocks on inference.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from assistant.agent import Agent
from assistant.audio import FRAME_SECONDS, AudioSink, AudioSource
from assistant.config import Settings
from assistant.events import EventLog
from assistant.listen import Command, CommandRecorder
from assistant.phrases import phrase
from assistant.speakable import to_speakable
from assistant.stt import Transcriber
from assistant.tts import Synthesizer
from assistant.vad import SileroVad
from assistant.wake import WakeDetection, WakeDetector

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")


class State(enum.Enum):
    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"


@dataclass
class Models:
    """Every model the pipeline runs, loaded once at start."""

    wake: WakeDetector
    vad: SileroVad
    stt: Transcriber
    agent: Agent
    tts: Synthesizer

    @classmethod
    def load(cls, settings: Settings, config_dir: Path | None = None) -> Models:
        """Load every model (blocking, several seconds); raises ModelError or RuntimeError."""
        started = time.perf_counter()
        models = cls(
            wake=WakeDetector(settings.wake),
            vad=SileroVad(),
            stt=Transcriber(settings.stt, threads=settings.llm.threads),
            agent=Agent(settings.llm, settings.persona),
            tts=Synthesizer(settings.tts, config_dir),
        )
        _LOGGER.info("Models loaded in %.2f s", time.perf_counter() - started)
        return models


class _Stage:
    """A single worker thread that runs one stage's blocking calls in order."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class Pipeline:
    """Run the assistant on one audio source and one audio sink until the source ends."""

    def __init__(
        self,
        settings: Settings,
        models: Models,
        source: AudioSource,
        sink: AudioSink,
        events: EventLog,
    ) -> None:
        self.settings = settings
        self.models = models
        self.source = source
        self.sink = sink
        self.events = events
        self.state = State.IDLE

        self._audio_stage = _Stage("audio")
        self._stt_stage = _Stage("stt")
        self._llm_stage = _Stage("llm")
        self._tts_stage = _Stage("tts")
        self._recorder = CommandRecorder(settings.listen, models.vad)
        pre_roll_frames = max(1, round(settings.listen.pre_roll_seconds / FRAME_SECONDS))
        self._recent_frames: collections.deque[np.ndarray] = collections.deque(maxlen=pre_roll_frames)
        self._audio_seconds = 0.0
        self._wake_audio_seconds = 0.0
        self._turn: asyncio.Task[None] | None = None
        self._wake_words = _wake_words(settings.wake.models)

    async def run(self) -> None:
        """Process the source's frames; return once it ends and the last reply is done."""
        try:
            async for frame in self.source.frames():
                self._audio_seconds += FRAME_SECONDS
                await self._process_frame(frame)
                if self._turn is not None and not self.source.paced:
                    # A file read as fast as possible waits for the reply, as a person would.
                    await self._turn
            if self.state is State.LISTENING:
                await self._start_turn(self._recorder.finish())
            if self._turn is not None:
                await self._turn
        finally:
            await self._cancel_turn()
            for stage in (self._audio_stage, self._stt_stage, self._llm_stage, self._tts_stage):
                stage.shutdown()

    async def _process_frame(self, frame: np.ndarray) -> None:
        if self.state is State.LISTENING:
            command = await self._audio_stage.run(self._recorder.feed, frame)
            if command is not None:
                await self._start_turn(command)
            return

        detection = await self._audio_stage.run(self.models.wake.process, frame)
        self._recent_frames.append(frame)
        if detection is None:
            return
        if self.state is not State.IDLE:
            _LOGGER.debug("Wake word %s ignored while %s", detection.model, self.state.value)
            return
        await self._on_wake(detection)

    async def _on_wake(self, detection: WakeDetection) -> None:
        self._wake_audio_seconds = self._audio_seconds
        self.events.emit(
            "wake",
            model=detection.model,
            score=round(detection.score, 4),
            audio_time=round(self._audio_seconds, 3),
        )
        pre_roll = np.concatenate(self._recent_frames) if self._recent_frames else None
        await self._audio_stage.run(self._recorder.start, pre_roll)
        self._recent_frames.clear()
        self.state = State.LISTENING

    async def _start_turn(self, command: Command) -> None:
        self.state = State.THINKING
        self._turn = asyncio.create_task(self._run_turn(command), name="turn")

    async def _run_turn(self, command: Command) -> None:
        try:
            await self._answer(command)
        except asyncio.CancelledError:
            _LOGGER.info("Reply cancelled")
            raise
        except Exception as error:  # noqa: BLE001 - any stage failure must leave the daemon listening
            _LOGGER.exception("Turn failed")
            self.events.emit("error", stage=getattr(error, "stage", "pipeline"), message=str(error))
            await self._speak_phrase("error")
        finally:
            self._turn = None
            self.state = State.IDLE
            self.events.emit("idle")

    async def _answer(self, command: Command) -> None:
        speech_end = self._wake_audio_seconds + command.speech_end_seconds
        self.events.emit("speech_end", audio_time=round(speech_end, 3), reason=command.reason.value)
        if not command.has_speech:
            _LOGGER.info("No speech after the wake word")
            return

        transcript = await _in_stage("stt", self._stt_stage.run(self.models.stt.transcribe, command.samples))
        text = strip_wake_words(transcript.text, self._wake_words)
        self.events.emit("transcript", text=text, language=transcript.language)
        if not text:
            await self._speak_phrase("not_understood")
            return

        reply = await self._reply(text)
        self.events.emit("reply", text=reply)

    async def _reply(self, text: str) -> str:
        """Generate the reply in the LLM stage while the TTS stage speaks finished sentences."""
        loop = asyncio.get_running_loop()
        sentences: asyncio.Queue[str | None] = asyncio.Queue()

        def generate() -> None:
            try:
                for sentence in self.models.agent.reply_sentences(text):
                    loop.call_soon_threadsafe(sentences.put_nowait, sentence)
            finally:
                loop.call_soon_threadsafe(sentences.put_nowait, None)

        generation = asyncio.ensure_future(_in_stage("llm", self._llm_stage.run(generate)))
        spoken: list[str] = []
        try:
            while (sentence := await sentences.get()) is not None:
                spoken.append(sentence)
                await self._speak(sentence)
            await generation
        finally:
            if not generation.done():
                generation.cancel()

        if not spoken:
            spoken.append(phrase("no_answer", self.settings.persona.language))
            await self._speak(spoken[0])
        await self.sink.drain()
        return " ".join(spoken)

    async def _speak(self, text: str) -> None:
        speakable = to_speakable(text, self.settings.persona.language)
        if not speakable:
            return
        audio = await _in_stage("tts", self._tts_stage.run(self.models.tts.synthesize_all, speakable))
        if len(audio) == 0:
            return
        if self.state is not State.SPEAKING:
            self.state = State.SPEAKING
            self.events.emit("audio_start")
        await self.sink.play(audio, self.models.tts.sample_rate_hz)

    async def _speak_phrase(self, key: str) -> None:
        try:
            await self._speak(phrase(key, self.settings.persona.language))
            await self.sink.drain()
        except Exception:  # noqa: BLE001 - the apology itself failing must not stop the daemon
            _LOGGER.exception("Could not speak the %r phrase", key)

    async def _cancel_turn(self) -> None:
        turn = self._turn
        if turn is None or turn.done():
            return
        turn.cancel()
        await self.sink.stop()
        try:
            await turn
        except asyncio.CancelledError:
            pass


class StageError(RuntimeError):
    """A failure inside one pipeline stage; `stage` names it for the error event."""

    def __init__(self, stage: str, error: BaseException) -> None:
        super().__init__(f"{stage} failed: {error}")
        self.stage = stage


async def _in_stage(stage: str, awaitable: Any) -> Any:
    try:
        return await awaitable
    except asyncio.CancelledError:
        raise
    except StageError:
        raise
    except Exception as error:
        raise StageError(stage, error) from error


def _wake_words(model_names: list[str]) -> set[str]:
    words = set()
    for name in model_names:
        words.update(part for part in re.split(r"[^a-z]+", Path(name).stem.lower()) if part)
    return words


def strip_wake_words(text: str, wake_words: set[str]) -> str:
    """Remove the wake phrase (or its tail) that Whisper heard at the start of a command."""
    words = text.split()
    while words and re.sub(r"[^\w]", "", words[0].lower()) in wake_words:
        words.pop(0)
    return " ".join(words).lstrip(" ,.!?;:-").strip()
