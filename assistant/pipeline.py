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
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Awaitable
from typing import Protocol

import numpy as np

from assistant.audio import FRAME_SECONDS, AudioSink, AudioSource
from assistant.config import Settings
from assistant.events import EventLog
from assistant.listen import Command, CommandRecorder
from assistant.phrases import phrase
from assistant.speakable import to_speakable
from assistant.stages import Models, Stage, StageError, in_stage
from assistant.stt import Transcript
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
    #: "stop" silences the reply, "repeat" speaks the last reply again, "forget" resets the conversation.
    action: str | None = None


class LocalSkills(Protocol):
    def handle(self, text: str) -> LocalReply | None: ...


class Earcons(Protocol):
    def sound(self, name: str) -> tuple[np.ndarray, int] | None: ...


class TooManyFailures(RuntimeError):
    """Raised by Pipeline.run after the configured number of failed turns in a row."""


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
        self._pause_check: asyncio.Task[None] | None = None
        self._checked_speech_end: int | None = None
        self._early_transcript: tuple[int | None, Transcript] | None = None
        self._turn: asyncio.Task[None] | None = None
        self._consecutive_failures = 0
        self._fatal: TooManyFailures | None = None
        self._stop_generation = threading.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._background: set[asyncio.Task[None]] = set()
        self._wake_words = _wake_words(settings.wake.models)

    # --- the frame loop --------------------------------------------------------------

    async def run(self) -> None:
        """Process the source's frames; return once it ends and the last reply is done."""
        self._prime_prompt()
        try:
            async for frame in self.source.frames():
                self._audio_seconds += FRAME_SECONDS
                await self._process_frame(frame)
                if self._turn is not None and not self.source.paced:
                    # A file read as fast as possible waits for the reply, as a person would.
                    await asyncio.shield(self._turn)
                self._raise_if_fatal()
            await self._finish_input()
            self._raise_if_fatal()
        finally:
            # Aborts llama.cpp in the middle of a prompt evaluation too.
            self._stop_generation.set()
            await self._cancel_turn()
            if self._pause_check is not None:
                self._pause_check.cancel()
                await asyncio.gather(self._pause_check, return_exceptions=True)
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
            if self.state is not State.LISTENING:
                return  # an end-of-turn check ended the command while this frame was heard
            if command is not None:
                await self._start_turn(command)
            elif self._pause_check_due():
                await self._start_pause_check()
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
        # Any cancelled generation has ended by now; the pause checks must not see its stop request.
        self._stop_generation.clear()
        timeout = self.settings.listen.follow_up_seconds if follow_up else None
        await self._audio_stage.run(self._recorder.start, pre_roll, timeout)
        self._listen_start_seconds = self._audio_seconds
        self._follow_up = follow_up
        self._set_state(State.LISTENING)

    # --- end of turn ---------------------------------------------------------------------

    def _pause_check_due(self) -> bool:
        """Return True after a pause that follows new speech, when no check is running."""
        recorder = self._recorder
        return (
            recorder.trailing_silence_seconds >= self.settings.listen.pause_seconds
            and recorder.speech_end_window != self._checked_speech_end
            and (self._pause_check is None or self._pause_check.done())
        )

    async def _start_pause_check(self) -> None:
        self._checked_speech_end = self._recorder.speech_end_window
        check = self._check_pause(self._recorder.snapshot(), self._checked_speech_end)
        if self.source.paced:
            # Frames keep coming while Whisper and the model look at the words.
            self._pause_check = asyncio.create_task(check, name="pause-check")
        else:
            await check

    async def _check_pause(self, snapshot: Command, speech_end: int | None) -> None:
        """Transcribe the command so far and end it now if the words form a finished utterance."""
        try:
            transcript = await self._stt_stage.run(self.models.stt.transcribe, snapshot.samples)
            if self._recorder.speech_end_window != speech_end or self.state is not State.LISTENING:
                return
            self._early_transcript = (speech_end, transcript)
            text = strip_wake_words(transcript.text, self._wake_words)
            estimate = await self._llm_stage.run(
                self.models.agent.estimate_end_of_turn, text, self._stop_generation.is_set
            )
            finished = estimate.finished(self.settings.listen.end_of_turn_probability)
            self.events.emit(
                "end_of_turn_check", text=text, end=round(estimate.end, 3),
                continuation=round(estimate.continuation, 3), finished=finished,
            )
            if finished and self._recorder.speech_end_window == speech_end and self.state is State.LISTENING:
                await self._start_turn(snapshot)
        except Exception:  # noqa: BLE001 - the check only speeds things up; the silence timeout still ends the command
            _LOGGER.exception("End-of-turn check failed; waiting for silence instead")

    # --- turns -------------------------------------------------------------------------

    async def _start_turn(self, command: Command) -> None:
        transcript = None
        if self._early_transcript is not None and self.settings.llm.stream:
            speech_end, early = self._early_transcript
            if speech_end == self._recorder.speech_end_window:
                transcript = early
        self._early_transcript = None
        self._checked_speech_end = None
        if command.has_speech or not self._follow_up:
            speech_end = self._listen_start_seconds + command.speech_end_seconds
            self.events.emit(
                "speech_end",
                audio_time=round(speech_end, 3),
                decided_audio_time=round(self._audio_seconds, 3),
                reason=command.reason.value,
            )
        self._set_state(State.THINKING)
        self._stop_generation.clear()
        self._turn = asyncio.create_task(self._run_turn(command, self._follow_up, transcript), name="turn")

    async def _run_turn(self, command: Command, follow_up: bool, transcript: Transcript | None) -> None:
        answered = False
        try:
            answered = await self._answer(command, follow_up, transcript)
        except asyncio.CancelledError:
            _LOGGER.info("Reply interrupted")
            self._turn = None
            raise
        except Exception as error:  # noqa: BLE001 - a failed turn must leave the daemon listening
            self._record_failure(error)
            await self._speak_phrase("error")
            self._play_earcon("error")
        else:
            self._consecutive_failures = 0
        self._turn = None
        self._prime_prompt()
        if answered and self.settings.listen.follow_up_seconds > 0:
            self.events.emit("follow_up", seconds=self.settings.listen.follow_up_seconds)
            await self._start_listening(None, follow_up=True)
        else:
            self._set_state(State.IDLE)

    async def _answer(self, command: Command, follow_up: bool, transcript: Transcript | None) -> bool:
        """Transcribe and reply to one command; return True when a reply was spoken.

        `transcript` is the one made during the final pause, when it covers the command.
        """
        if not command.has_speech:
            _LOGGER.info("No speech after the wake word")
            return False

        if transcript is None:
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
        if local.action != "repeat":
            self.last_reply = text
        await self._speak(text)
        await self.sink.drain()
        return text

    async def _reply(self, text: str) -> str:
        """Generate the reply in the LLM stage while the TTS stage speaks finished sentences."""
        loop = asyncio.get_running_loop()
        sentences: asyncio.Queue[str | None] = asyncio.Queue()

        def first_text() -> None:
            loop.call_soon_threadsafe(self.events.emit, "reply_start")

        deadline = time.monotonic() + self.settings.llm.timeout_seconds
        timed_out = threading.Event()

        def should_stop() -> bool:
            if self._stop_generation.is_set():
                return True
            if time.monotonic() > deadline:
                timed_out.set()
                return True
            return False

        def generate() -> None:
            try:
                for sentence in self.models.agent.reply_sentences(text, should_stop, first_text):
                    loop.call_soon_threadsafe(sentences.put_nowait, sentence)
            finally:
                loop.call_soon_threadsafe(self.events.emit, "reply_end")
                loop.call_soon_threadsafe(sentences.put_nowait, None)

        generation = asyncio.ensure_future(self._llm_stage.run(generate))
        spoken: list[str] = []
        try:
            if not self.settings.llm.stream:
                # Sequential mode: the whole reply first, then all of its speech.
                await generation
            while (sentence := await sentences.get()) is not None:
                self.events.emit("sentence", index=len(spoken), text=sentence)
                spoken.append(sentence)
                if self.settings.llm.stream:
                    await self._speak(sentence)
            if not self.settings.llm.stream and spoken:
                await self._speak(" ".join(spoken))
            await generation
        finally:
            if not generation.done():
                self._stop_generation.set()
                await asyncio.gather(generation, return_exceptions=True)

        if timed_out.is_set():
            if not spoken:
                raise StageError("llm", TimeoutError(f"no reply within {self.settings.llm.timeout_seconds} s"))
            _LOGGER.warning("Reply cut after %.0f s of generation", self.settings.llm.timeout_seconds)
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
            # A wake word during the announcement has started listening: leave that state alone.
            if self.state in (State.THINKING, State.SPEAKING):
                self._set_state(State.IDLE)

    async def apply_settings(self, settings: Settings, models: Models | None = None) -> None:
        """Switch to `settings`, and to reloaded `models` if given, once no turn is running.

        A turn in progress finishes with the old persona and models. `models` must
        keep the current voice activity detector, which the command recorder holds.
        """
        while not self._idle.is_set():
            await self._idle.wait()
        if models is not None:
            self.models = models
        self.settings = settings
        self._recorder.settings = settings.listen
        self.models.wake.settings = settings.wake
        self.models.stt.settings = settings.stt
        self.models.agent.settings = settings.llm
        self.models.agent.persona = settings.persona
        self._wake_words = _wake_words(settings.wake.models)
        pre_roll_frames = max(1, round(settings.listen.pre_roll_seconds / FRAME_SECONDS))
        if pre_roll_frames != self._recent_frames.maxlen:
            self._recent_frames = collections.deque(self._recent_frames, maxlen=pre_roll_frames)

    def _prime_prompt(self) -> None:
        """Evaluate the next turn's prompt prefix in the background, so that replies start sooner."""
        self._run_in_background(
            self._llm_stage.run(self.models.agent.prime, self._stop_generation.is_set), "prime-prompt"
        )

    def _run_in_background(self, coroutine: Awaitable[object], name: str) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(lambda done: _log_failure(done, name))

    def _play_earcon(self, name: str) -> None:
        sound = self.earcons.sound(name) if self.earcons is not None else None
        if sound is None:
            return
        self._run_in_background(self.sink.play(*sound), f"earcon-{name}")

    # --- failures ----------------------------------------------------------------------------

    def _record_failure(self, error: Exception) -> None:
        stage = getattr(error, "stage", "pipeline")
        self._consecutive_failures += 1
        limit = self.settings.daemon.max_consecutive_failures
        # The full traceback only at DEBUG: the message names the stage and the cause.
        _LOGGER.error("Turn failed in the %s stage (%d in a row, limit %d): %s",
                      stage, self._consecutive_failures, limit, error)
        _LOGGER.debug("Turn failure details", exc_info=error)
        self.events.emit("error", stage=stage, message=str(error))
        if self._consecutive_failures >= limit:
            self._fatal = TooManyFailures(
                f"{self._consecutive_failures} turns failed in a row, the last in the {stage} stage: {error}"
            )

    def _raise_if_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

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
            # An announcement may be playing without a turn.
            await self.sink.stop()
            return
        self._stop_generation.set()
        turn.cancel()
        await self.sink.stop()
        await asyncio.gather(turn, return_exceptions=True)
        self._turn = None
        self.events.emit("interrupted")


def _log_failure(task: asyncio.Future[object], name: str) -> None:
    if not task.cancelled() and task.exception() is not None:
        _LOGGER.error("Background task %s failed: %s", name, task.exception())


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
