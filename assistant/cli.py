"""Command line: `assistant run | ask | say | transcribe | check | devices`."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from assistant.offline import install_network_guard

_LOGGER = logging.getLogger("assistant")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistant", description="Offline voice assistant.")
    parser.add_argument("--config", metavar="PATH", help="configuration file (default: searched, see README)")
    parser.add_argument(
        "--log-level", default=os.environ.get("ASSISTANT_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log verbosity (default: INFO)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon: microphone and speaker, or files")
    run.add_argument("--input", metavar="FILE", help="read audio from a WAV, FLAC or OGG file instead of the microphone")
    run.add_argument("--output", metavar="FILE.wav", help="write reply audio to a WAV file instead of the speaker")
    run.add_argument("--events", metavar="FILE.jsonl", help="write one JSON event per line to this file")
    run.add_argument("--realtime", action="store_true", help="pace --input at real time, as a microphone would")

    ask = commands.add_parser("ask", help="one turn through the agent; prints and speaks the reply")
    ask.add_argument("text", help="what the user says")
    ask.add_argument("--output", metavar="FILE.wav", help="write the spoken reply to a WAV file instead of the speaker")

    say = commands.add_parser("say", help="speak text with the configured voice")
    say.add_argument("text", help="text to speak")
    say.add_argument("--output", metavar="FILE.wav", help="write the speech to a WAV file instead of the speaker")

    transcribe = commands.add_parser("transcribe", help="print the transcript of an audio file")
    transcribe.add_argument("file", help="WAV, FLAC or OGG file")

    commands.add_parser("check", help="load the configuration and every model, print what was resolved")
    commands.add_parser("devices", help="list sound devices and mark the configured ones")

    for sub in (run, ask, say, transcribe, commands.choices["check"], commands.choices["devices"]):
        sub.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="configuration file")
    return parser


def configure_logging(level: str) -> None:
    """Log to stderr; under systemd the journal adds its own timestamps, so leave them out."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter stays out of the daemon's log unless asked for.
    for noisy in ("faster_whisper", "piper", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))


class _JournalFormatter(logging.Formatter):
    """Prefix each line with its syslog priority, which journald reads from a stream."""

    _PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self._PRIORITIES.get(record.levelno, 6)}>" + super().format(record)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    install_network_guard()

    from assistant import commands
    from assistant.audio import AudioFileError
    from assistant.config import ConfigError
    from assistant.devices import AudioDeviceError
    from assistant.models import ModelError

    try:
        return commands.dispatch(args)
    except ConfigError as error:
        print(f"assistant: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except (ModelError, AudioFileError, AudioDeviceError, OSError, RuntimeError) as error:
        _LOGGER.debug("Failure details", exc_info=True)
        print(f"assistant: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
