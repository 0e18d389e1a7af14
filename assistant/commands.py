"""Subcommand implementations; the argument parsing lives in cli.py."""

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
from assistant.reload import ConfigReloader

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
    from assistant.earcons import load_earcons
    from assistant.pipeline import Pipeline
    from assistant.skills import start_skills, timer_done_text
    from assistant.stages import Models
    from assistant.timers import TimerAnnouncer, TimerStore

    started = time.perf_counter()
    notifier = SystemdNotifier()
    events = EventLog(args.events)
    events.listeners.append(lambda record: _report_status(notifier, record))
    reloader = ConfigReloader(config_path, settings, notifier, events)
    # Installed before the models load, so that SIGTERM or SIGHUP during the load
    # does not kill the process with the signal's default action.
    stop = _handle_signals(asyncio.current_task(), reloader)
    watchdog = asyncio.create_task(notifier.run_watchdog(), name="watchdog")
    source = open_source(args, settings)
    # A missing speaker fails here, before the models load, as a missing microphone does above.
    sink: AudioSink | None = None if args.output else open_speaker(settings)
    try:
        notifier.status("Loading models")
        models = await asyncio.to_thread(Models.load, settings, config_path.parent)
        if sink is None:
            sink = open_sink(args.output, settings, models.tts.sample_rate_hz, realtime=args.realtime)
        earcons = None if args.output else load_earcons(settings.audio, config_path.parent, models.tts.sample_rate_hz)
        events.emit("ready", seconds=round(time.perf_counter() - started, 3))
        notifier.ready(_STATUS_BY_EVENT["ready"])

        timers = TimerStore.open_default()
        skills = start_skills(settings, timers, models.agent)
        pipeline = Pipeline(settings, models, source, sink, events, skills=skills, earcons=earcons)
        reloader.attach(pipeline)
        announcer = TimerAnnouncer(
            timers, lambda timer: pipeline.announce(timer_done_text(timer, pipeline.settings.persona.language))
        )
        # Timers that fell due while the daemon was down are announced before it listens.
        await announcer.announce_due()
        announcing = asyncio.create_task(announcer.run(), name="timers")
        try:
            # Cancelling this task on SIGTERM cancels the pipeline task it awaits.
            task = asyncio.create_task(pipeline.run(), name="pipeline")
            await task
        finally:
            announcing.cancel()
            await asyncio.gather(announcing, return_exceptions=True)
        return 0
    except asyncio.CancelledError:
        if not stop.is_set():
            raise
        _LOGGER.info("Stopped by signal")
        return 0
    finally:
        # From here on, a stop signal is only logged: the cleanup below is the stop.
        stop.set()
        # Cancelled first, so that no watchdog ping follows STOPPING=1.
        watchdog.cancel()
        notifier.stopping()
        await reloader.close()
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
    "follow_up": "Listening for a follow-up question",
}


def _report_status(notifier: SystemdNotifier, record: dict) -> None:
    status = _STATUS_BY_EVENT.get(record["event"])
    if status is not None:
        notifier.status(status)


def open_source(args: argparse.Namespace, settings: Settings) -> AudioSource:
    if args.input:
        return FileSource(args.input, realtime=args.realtime)
    from assistant.microphone import MicrophoneSource

    return MicrophoneSource(settings.audio.input_device, settings.audio.input_rate_hz)


def open_sink(output: str | None, settings: Settings, sample_rate_hz: int, realtime: bool = False) -> AudioSink:
    if output:
        return WavFileSink(output, sample_rate_hz, realtime=realtime)
    return open_speaker(settings)


def open_speaker(settings: Settings) -> AudioSink:
    from assistant.speaker import SpeakerSink

    return SpeakerSink(settings.audio.output_device, settings.audio.output_rate_hz)


def _handle_signals(task: asyncio.Task[int] | None, reloader: ConfigReloader) -> asyncio.Event:
    """Cancel `task` on SIGTERM or SIGINT and reload the configuration on SIGHUP.

    The returned event is set once a stop signal came, so that the caller can tell
    a requested stop from any other cancellation.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(signal_name: str) -> None:
        if stop.is_set():
            _LOGGER.info("Received %s again; already stopping", signal_name)
            return
        _LOGGER.info("Received %s, stopping", signal_name)
        stop.set()
        if task is not None:
            task.cancel()

    def request_reload() -> None:
        _LOGGER.info("Received SIGHUP, reloading %s", reloader.config_path)
        reloader.request()

    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, request_stop, signal.Signals(number).name)
    loop.add_signal_handler(signal.SIGHUP, request_reload)
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

