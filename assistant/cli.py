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

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
LOG_LEVEL_ENV_VAR = "ASSISTANT_LOG_LEVEL"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistant", description="Offline voice assistant.")
    parser.add_argument("--config", metavar="PATH", help="configuration file (default: searched, see README)")
    parser.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS,
        help=f"log verbosity (default: ${LOG_LEVEL_ENV_VAR}, else INFO)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon: microphone and speaker, or files")
    run.add_argument("--input", metavar="FILE", help="read audio from a WAV, FLAC or OGG file instead of the microphone")
    run.add_argument("--output", metavar="FILE.wav", help="write reply audio to a WAV file instead of the speaker")
    run.add_argument("--events", metavar="FILE.jsonl", help="write one JSON event per line to this file")
    run.add_argument("--realtime", action="store_true", help="pace --input at real time, as a microphone would")

    ask = commands.add_parser("ask", help="one turn through the agent; prints and speaks the reply")
    ask.add_argument("text", help="the user's request, as text")
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
        sub.add_argument(
            "--log-level", type=str.upper, choices=LOG_LEVELS, default=argparse.SUPPRESS, help="log verbosity",
        )
    return parser


def log_level(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """Return --log-level, else $ASSISTANT_LOG_LEVEL, else INFO; exit with status 2 on an invalid value."""
    if args.log_level:
        return args.log_level
    value = os.environ.get(LOG_LEVEL_ENV_VAR, "").strip().upper()
    if not value:
        return "INFO"
    if value not in LOG_LEVELS:
        parser.error(f"invalid ${LOG_LEVEL_ENV_VAR}={os.environ[LOG_LEVEL_ENV_VAR]!r}: expected one of {', '.join(LOG_LEVELS)}")
    return value


def configure_logging(level: str) -> None:
    """Log to stderr, with syslog priorities and no timestamps when stderr is the journal, else with the time."""
    handler = logging.StreamHandler(sys.stderr)
    if stderr_is_journal():
        # The journal adds its own timestamp, and the unit name stands for the program.
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter stays out of the daemon's log unless DEBUG is asked for.
    for noisy in ("faster_whisper", "piper", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.NOTSET if level == "DEBUG" else logging.WARNING)


def stderr_is_journal() -> bool:
    """Tell whether stderr is connected to the journal.

    systemd sets JOURNAL_STREAM to the device and inode numbers ("DEV:INODE") of
    the stream it connects to stdout or stderr (systemd.exec(5)). A process that
    inherited the variable but writes to a terminal or a file has another stderr.
    """
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        status = os.fstat(sys.stderr.fileno())
        return (int(device), int(inode)) == (status.st_dev, status.st_ino)
    except (ValueError, OSError, AttributeError):
        # No or malformed JOURNAL_STREAM, or a stderr without a file descriptor.
        return False


def syslog_priority(levelno: int) -> int:
    """Map a logging level to a syslog priority: 2 critical, 3 error, 4 warning, 6 info, 7 debug."""
    for threshold, priority in ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6)):
        if levelno >= threshold:
            return priority
    return 7


class JournalFormatter(logging.Formatter):
    """Prefix every line with the record's syslog priority as "<N>", which journald reads from a stream.

    journald stores each line of a stream as its own entry and takes the
    priority from that line's prefix (SyslogLevelPrefix= in systemd.exec(5)), so
    every line of a multi-line message or traceback gets the prefix.
    """

    def format(self, record: logging.LogRecord) -> str:
        return prefix_lines(super().format(record), syslog_priority(record.levelno))


def prefix_lines(text: str, priority: int) -> str:
    """Prefix each line of `text` with "<priority>"; an empty text becomes one prefixed empty line."""
    return "\n".join(f"<{priority}>{line}" for line in text.splitlines() or [""])


def print_error(message: str) -> None:
    """Write "assistant: MESSAGE" to stderr, at error priority when stderr is the journal."""
    text = f"assistant: {message}"
    if stderr_is_journal():
        text = prefix_lines(text, syslog_priority(logging.ERROR))
    print(text, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(log_level(args, parser))
    install_network_guard()

    from assistant import commands
    from assistant.audio import AudioFileError
    from assistant.config import ConfigError
    from assistant.devices import AudioDeviceError
    from assistant.models import ModelError

    try:
        return commands.dispatch(args)
    except ConfigError as error:
        print_error(str(error))
        return EXIT_CONFIG
    except (ModelError, AudioFileError, AudioDeviceError, OSError, RuntimeError) as error:
        _LOGGER.debug("Failure details", exc_info=True)
        print_error(str(error))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
