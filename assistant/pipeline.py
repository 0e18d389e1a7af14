"""The voice pipeline: wake word, command recording, transcription, reply and speech.

One asyncio task reads frames from the audio source and feeds the wake word
detector and, while listening, the command recorder. Each finished command
becomes a turn task: transcription, then the reply, whose sentences are spoken
as soon as each one is generated. Every model call runs in its stage's thread.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from assistant.audio import FRAME_SECONDS, AudioSink, AudioSource
from assistant.config import Settings
from assistant.events import EventLog
from assistant.listen import Command, CommandRecorder
from assistant.phrases import phrase
from assistant.speakable import to_speakable
from assistant.stages import Models, Stage, in_stage
from assistant.wake import WakeDetection

_LOGGER = logging.getLogger(__name__)


class State(enum.Enum):
    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"


@dataclass(frozen=True)
class LocalReply:
    """A reply from a local skill, given without asking the language model."""

    text: str
    #: "stop" silences the reply, "repeat" says the last reply again, "forget" resets the conversation.
    action: str | None = None


class LocalSkills(Protocol):
    def handle(self, text: str) -> LocalReply | None: ...


class Earcons(Protocol):
    def sound(self, name: str) -> tuple[np.ndarray, int] | None: ...


class Pipeline:
    """Run the assistant on one audio source and one audio sink until the source ends."""

    def __init__(
        self,
        settings: Settings,
        models: Models,
        source: AudioSource,
        sink: AudioSink,
        events: EventLog,
        skills: LocalSkills | None = None,
        earcons: Earcons | None = None,
    ) -> None:
        self.settings = settings
        self.models = models
        self.source = source
        self.sink = sink
        self.events = events
        self.skills = skills
        self.earcons = earcons
        self.state = State.IDLE
        self.last_reply = ""

        self._audio_stage = Stage("audio")
        self._stt_stage = Stage("stt")
        self._llm_stage = Stage("llm")
        self._tts_stage = Stage("tts")
        self._recorder = CommandRecorder(settings.listen, models.vad)
        pre_roll_frames = max(1, round(settings.listen.pre_roll_seconds / FRAME_SECONDS))
        self._recent_frames: collections.deque[np.ndarray] = collections.deque(maxlen=pre_roll_frames)
        self._audio_seconds = 0.0
        self._listen_start_seconds = 0.0
        self._follow_up = False
        self._turn: asyncio.Task[None] | None = None
        self._stop_generation = threading.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._background: set[asyncio.Task[None]] = set()
        self._wake_words = _wake_words(settings.wake.models)

    # --- the frame loop --------------------------------------------------------------

    async def run(self) -> None:
        """Process the source's frames; return once it ends and the last reply is done."""
        try:
            async for frame in self.source.frames():
                self._audio_seconds += FRAME_SECONDS
                await self._process_frame(frame)
                if self._turn is not None and not self.source.paced:
                    # A file read as fast as possible waits for the reply, as a person would.
                    await asyncio.shield(self._turn)
            await self._finish_input()
        finally:
            await self._cancel_turn()
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            for stage in (self._audio_stage, self._stt_stage, self._llm_stage, self._tts_stage):
                stage.shutdown()

    async def _finish_input(self) -> None:
        if self.state is State.LISTENING:
            await self._start_turn(self._recorder.finish())
        while self._turn is not None:
            await asyncio.shield(self._turn)
            if self.state is State.LISTENING:
                # A follow-up window opened after the last reply, but no audio is left.
                await self._start_turn(self._recorder.finish())

    async def _process_frame(self, frame: np.ndarray) -> None:
        listening = self.state is State.LISTENING
        detection, command = await self._audio_stage.run(self._hear, frame, listening)
        if listening:
            if command is not None:
                await self._start_turn(command)
            return

        self._recent_frames.append(frame)
        if detection is None:
            return
        if self.state is State.IDLE:
            await self._on_wake(detection)
        elif detection.score >= self.settings.wake.barge_in_threshold:
            await self._barge_in(detection)
        else:
            _LOGGER.info(
                "Wake word %s (score %.2f) ignored while %s: below barge_in_threshold %.2f",
                detection.model, detection.score, self.state.value, self.settings.wake.barge_in_threshold,
            )

    def _hear(self, frame: np.ndarray, listening: bool) -> tuple[WakeDetection | None, Command | None]:
        """Feed one frame to the wake detector and, while listening, to the recorder (audio stage)."""
        detection = self.models.wake.process(frame)
        command = self._recorder.feed(frame) if listening else None
        return detection, command

    # --- wake word and listening ---------------------------------------------------------

    async def _on_wake(self, detection: WakeDetection, barge_in: bool = False) -> None:
        fields = {"barge_in": True} if barge_in else {}
        self.events.emit(
            "wake",
            model=detection.model,
            score=round(detection.score, 4),
            audio_time=round(self._audio_seconds, 3),
            **fields,
        )
        self._play_earcon("wake")
        pre_roll = np.concatenate(self._recent_frames) if self._recent_frames else None
        self._recent_frames.clear()
        await self._start_listening(pre_roll, follow_up=False)

    async def _barge_in(self, detection: WakeDetection) -> None:
        _LOGGER.info("Wake word during the reply: stopping it")
        await self._cancel_turn()
        await self._on_wake(detection, barge_in=True)

    async def _start_listening(self, pre_roll: np.ndarray | None, follow_up: bool) -> None:
        timeout = self.settings.listen.follow_up_seconds if follow_up else None
        await self._audio_stage.run(self._recorder.start, pre_roll, timeout)
        self._listen_start_seconds = self._audio_seconds
        self._follow_up = follow_up
        self._set_state(State.LISTENING)

    # --- turns -------------------------------------------------------------------------

    async def _start_turn(self, command: Command) -> None:
        self._set_state(State.THINKING)
        self._stop_generation.clear()
        self._turn = asyncio.create_task(self._run_turn(command, self._follow_up), name="turn")

    async def _run_turn(self, command: Command, follow_up: bool) -> None:
        answered = False
        try:
            answered = await self._answer(command, follow_up)
        except asyncio.CancelledError:
            _LOGGER.info("Reply interrupted")
            self._turn = None
            raise
        except Exception as error:  # noqa: BLE001 - a failed turn must leave the daemon listening
            _LOGGER.exception("Turn failed")
            self.events.emit("error", stage=getattr(error, "stage", "pipeline"), message=str(error))
            await self._speak_phrase("error")
            self._play_earcon("error")
        self._turn = None
        if answered and self.settings.listen.follow_up_seconds > 0:
            self.events.emit("follow_up", seconds=self.settings.listen.follow_up_seconds)
            await self._start_listening(None, follow_up=True)
        else:
            self._set_state(State.IDLE)

    async def _answer(self, command: Command, follow_up: bool) -> bool:
        """Answer one command; return True when a reply was spoken."""
        if follow_up and not command.has_speech:
            return False
        speech_end = self._listen_start_seconds + command.speech_end_seconds
        self.events.emit("speech_end", audio_time=round(speech_end, 3), reason=command.reason.value)
        if not command.has_speech:
            _LOGGER.info("No speech after the wake word")
            return False

        transcript = await self._stt_stage.run(self.models.stt.transcribe, command.samples)
        text = strip_wake_words(transcript.text, self._wake_words)
        self.events.emit("transcript", text=text, language=transcript.language)
        if not text:
            if not follow_up:
                await self._speak_phrase("not_understood")
            return False

        local = self.skills.handle(text) if self.skills is not None else None
        if local is not None:
            reply = await self._run_local(local)
        else:
            reply = await self._reply(text)
        self.events.emit("reply", text=reply)
        self._play_earcon("done")
        return bool(reply)

    async def _run_local(self, local: LocalReply) -> str:
        if local.action == "stop":
            await self.sink.stop()
            return ""
        if local.action == "forget":
            self.models.agent.reset()
        text = self.last_reply if local.action == "repeat" and self.last_reply else local.text
        await self._speak(text)
        await self.sink.drain()
        return text

    async def _reply(self, text: str) -> str:
        """Generate the reply in the LLM stage while the TTS stage speaks finished sentences."""
        loop = asyncio.get_running_loop()
        sentences: asyncio.Queue[str | None] = asyncio.Queue()

        def generate() -> None:
            try:
                for sentence in self.models.agent.reply_sentences(text, self._stop_generation.is_set):
                    loop.call_soon_threadsafe(sentences.put_nowait, sentence)
            finally:
                loop.call_soon_threadsafe(sentences.put_nowait, None)

        generation = asyncio.ensure_future(self._llm_stage.run(generate))
        spoken: list[str] = []
        try:
            while (sentence := await sentences.get()) is not None:
                spoken.append(sentence)
                await self._speak(sentence)
            await generation
        finally:
            if not generation.done():
                self._stop_generation.set()
                await asyncio.gather(generation, return_exceptions=True)

        if not spoken:
            spoken.append(phrase("no_answer", self.settings.persona.language))
            await self._speak(spoken[0])
        await self.sink.drain()
        self.last_reply = " ".join(spoken)
        return self.last_reply

    # --- speech out ------------------------------------------------------------------------

    async def _speak(self, text: str) -> None:
        speakable = to_speakable(text, self.settings.persona.language)
        if not speakable:
            return
        audio = await in_stage("tts", self._tts_stage.run(self.models.tts.synthesize_all, speakable))
        if len(audio) == 0:
            return
        if self.state is not State.SPEAKING:
            self._set_state(State.SPEAKING)
            self.events.emit("audio_start")
        await self.sink.play(audio, self.models.tts.sample_rate_hz)

    async def _speak_phrase(self, key: str) -> None:
        try:
            await self._speak(phrase(key, self.settings.persona.language))
            await self.sink.drain()
        except Exception:  # noqa: BLE001 - the apology itself failing must not stop the daemon
            _LOGGER.exception("Could not speak the %r phrase", key)

    async def announce(self, text: str) -> None:
        """Speak `text` (a timer that went off, for example) as soon as no turn is running."""
        while not self._idle.is_set():
            await self._idle.wait()
        self._set_state(State.THINKING)
        try:
            await self._speak(text)
            await self.sink.drain()
            self.events.emit("announce", text=text)
        finally:
            self._set_state(State.IDLE)

    def _play_earcon(self, name: str) -> None:
        sound = self.earcons.sound(name) if self.earcons is not None else None
        if sound is None:
            return
        task = asyncio.create_task(self.sink.play(*sound), name=f"earcon-{name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- state -----------------------------------------------------------------------------

    def _set_state(self, state: State) -> None:
        previous, self.state = self.state, state
        if state is State.IDLE:
            self._idle.set()
            if previous is not State.IDLE:
                self.events.emit("idle")
        else:
            self._idle.clear()

    async def _cancel_turn(self) -> None:
        """Stop the running turn: generation, synthesis and playback."""
        turn = self._turn
        if turn is None or turn.done():
            return
        self._stop_generation.set()
        turn.cancel()
        await self.sink.stop()
        await asyncio.gather(turn, return_exceptions=True)
        self._turn = None
        self.events.emit("interrupted")


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
