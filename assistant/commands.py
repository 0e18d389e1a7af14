"""What each subcommand does; the argument parsing lives in cli.py."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.audio import AudioSink, AudioSource, FileSource, WavFileSink, read_audio_file
from assistant.config import Settings, load_settings
from assistant.events import EventLog
from assistant.notify import SystemdNotifier

if TYPE_CHECKING:
    from assistant.tts import Synthesizer

_LOGGER = logging.getLogger("assistant")


def dispatch(args: argparse.Namespace) -> int:
    settings, config_path = load_settings(getattr(args, "config", None))
    _LOGGER.info("Configuration: %s", config_path)
    handler = {
        "run": cmd_run,
        "ask": cmd_ask,
        "say": cmd_say,
        "transcribe": cmd_transcribe,
        "check": cmd_check,
        "devices": cmd_devices,
    }[args.command]
    return handler(args, settings, config_path)


# --- run ---------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, settings: Settings, config_path: Path) -> int:
    return asyncio.run(run_daemon(args, settings, config_path))


async def run_daemon(args: argparse.Namespace, settings: Settings, config_path: Path) -> int:
    from assistant.pipeline import Pipeline
    from assistant.stages import Models

    started = time.perf_counter()
    notifier = SystemdNotifier()
    events = EventLog(args.events)
    events.listeners.append(lambda record: _report_status(notifier, record))
    watchdog = asyncio.create_task(notifier.run_watchdog(), name="watchdog")
    source = open_source(args, settings)
    sink: AudioSink | None = None
    try:
        notifier.status("Loading models")
        models = await asyncio.to_thread(Models.load, settings, config_path.parent)
        sink = open_sink(args.output, settings, models.tts.sample_rate_hz)
        events.emit("ready", seconds=round(time.perf_counter() - started, 3))
        notifier.ready(_STATUS_BY_EVENT["ready"])

        pipeline = Pipeline(settings, models, source, sink, events)
        task = asyncio.create_task(pipeline.run(), name="pipeline")
        stop = _stop_on_signals(task)
        try:
            await task
        except asyncio.CancelledError:
            if not stop.is_set():
                raise
            _LOGGER.info("Stopped by signal")
        return 0
    finally:
        notifier.stopping()
        watchdog.cancel()
        await asyncio.gather(watchdog, return_exceptions=True)
        if sink is not None:
            await sink.close()
        await source.close()
        events.close()


_STATUS_BY_EVENT = {
    "ready": "Listening for the wake word",
    "idle": "Listening for the wake word",
    "wake": "Listening to a command",
    "speech_end": "Thinking",
    "audio_start": "Speaking",
}


def _report_status(notifier: SystemdNotifier, record: dict) -> None:
    status = _STATUS_BY_EVENT.get(record["event"])
    if status is not None:
        notifier.status(status)


def open_source(args: argparse.Namespace, settings: Settings) -> AudioSource:
    if args.input:
        return FileSource(args.input, realtime=args.realtime)
    from assistant.devices import MicrophoneSource

    return MicrophoneSource(settings.audio.input_device)


def open_sink(output: str | None, settings: Settings, sample_rate_hz: int) -> AudioSink:
    if output:
        return WavFileSink(output, sample_rate_hz)
    from assistant.devices import SpeakerSink

    return SpeakerSink(settings.audio.output_device)


def _stop_on_signals(task: asyncio.Task[None]) -> asyncio.Event:
    """Cancel `task` on SIGTERM or SIGINT; the returned event tells that a signal came."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(signal_name: str) -> None:
        _LOGGER.info("Received %s, stopping", signal_name)
        stop.set()
        task.cancel()

    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, request_stop, signal.Signals(number).name)
    return stop


# --- ask, say, transcribe ----------------------------------------------------------


def cmd_ask(args: argparse.Namespace, settings: Settings, config_path: Path) -> int:
    from assistant.agent import Agent
    from assistant.tts import Synthesizer

    agent = Agent(settings.llm, settings.persona)
    synthesizer = Synthesizer(settings.tts, config_path.parent)
    reply = agent.reply(args.text)
    print(reply)
    asyncio.run(speak(reply, synthesizer, settings, args.output))
    return 0


def cmd_say(args: argparse.Namespace, settings: Settings, config_path: Path) -> int:
    from assistant.tts import Synthesizer

    synthesizer = Synthesizer(settings.tts, config_path.parent)
    asyncio.run(speak(args.text, synthesizer, settings, args.output))
    return 0


async def speak(text: str, synthesizer: Synthesizer, settings: Settings, output: str | None) -> None:
    """Speak `text` through the speaker, or write it to `output` as WAV."""
    from assistant.speakable import to_speakable

    audio = synthesizer.synthesize_all(to_speakable(text, settings.persona.language))
    sink = open_sink(output, settings, synthesizer.sample_rate_hz)
    try:
        if len(audio):
            await sink.play(audio, synthesizer.sample_rate_hz)
        await sink.drain()
    finally:
        await sink.close()


def cmd_transcribe(args: argparse.Namespace, settings: Settings, config_path: Path) -> int:
    from assistant.stt import Transcriber

    samples = read_audio_file(args.file)
    transcript = Transcriber(settings.stt, threads=settings.llm.threads).transcribe(samples)
    print(transcript.text)
    return 0


# --- check, devices ----------------------------------------------------------------


def cmd_check(args: argparse.Namespace, settings: Settings, config_path: Path) -> int:
    """Load every model, print what was resolved, and return 1 if anything failed."""
    from assistant import check

    report = check.run_checks(settings, config_path)
    print(report.text())
    return 0 if report.ok else 1


def cmd_devices(args: argparse.Namespace, settings: Settings, config_path: Path) -> int:
    from assistant.devices import list_devices

    print(list_devices(settings.audio))
    return 0

