"""Log format: syslog priorities for the journal, timestamps on a terminal, and the log level options."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import pytest

from assistant import cli
from conftest import PROJECT_DIR, run_assistant

CONFIG = str(PROJECT_DIR / "config.toml")
TIMESTAMP_RE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) ")


def make_record(level: int, message: str, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("assistant.test", level, __file__, 1, message, None, exc_info)


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.DEBUG, 7), (logging.INFO, 6), (25, 6), (logging.WARNING, 4),
        (logging.ERROR, 3), (logging.CRITICAL, 2), (5, 7),
    ],
)
def test_syslog_priority_of_level(level, priority):
    assert cli.syslog_priority(level) == priority


def test_journal_formatter_prefixes_one_line():
    formatter = cli.JournalFormatter("%(name)s: %(message)s")
    assert formatter.format(make_record(logging.WARNING, "disk low")) == "<4>assistant.test: disk low"


def test_journal_formatter_prefixes_every_traceback_line():
    formatter = cli.JournalFormatter("%(name)s: %(message)s")
    try:
        raise ValueError("bad value")
    except ValueError:
        record = make_record(logging.ERROR, "Turn failed\nsecond line", sys.exc_info())

    lines = formatter.format(record).split("\n")

    assert len(lines) > 4
    assert all(line.startswith("<3>") for line in lines), lines
    assert lines[0] == "<3>assistant.test: Turn failed"
    assert lines[1] == "<3>second line"
    assert lines[-1] == "<3>ValueError: bad value"


def test_journal_formatter_empty_message():
    formatter = cli.JournalFormatter("%(message)s")
    assert formatter.format(make_record(logging.INFO, "")) == "<6>"


def test_stderr_is_journal_matches_device_and_inode(tmp_path, monkeypatch):
    stream = (tmp_path / "stderr.txt").open("w")
    status = os.fstat(stream.fileno())
    monkeypatch.setattr(sys, "stderr", stream)
    try:
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
        assert cli.stderr_is_journal()
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino + 1}")
        assert not cli.stderr_is_journal()
        monkeypatch.setenv("JOURNAL_STREAM", "not-a-stream")
        assert not cli.stderr_is_journal()
        monkeypatch.delenv("JOURNAL_STREAM")
        assert not cli.stderr_is_journal()
    finally:
        stream.close()


def run_with_stderr_pipe(*args: str, journal: bool) -> tuple[int, str]:
    """Run `python -m assistant ARGS` with stderr on a pipe, announced as the journal's if `journal`."""
    read_end, write_end = os.pipe()
    status = os.fstat(write_end)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}
    if not journal:
        # The variable was inherited, but stderr is another stream.
        env["JOURNAL_STREAM"] = f"{status.st_dev}:{status.st_ino + 1}"
    with os.fdopen(read_end, "rb") as reader:
        process = subprocess.Popen(
            [sys.executable, "-m", "assistant", *args], stderr=write_end, stdout=subprocess.DEVNULL,
            env=env, cwd=PROJECT_DIR,
        )
        os.close(write_end)
        output = reader.read().decode()
        return process.wait(timeout=60), output


def test_journal_lines_have_priority_and_no_time(tmp_path):
    missing = tmp_path / "missing.wav"
    status, output = run_with_stderr_pipe(
        "--log-level", "DEBUG", "--config", CONFIG, "transcribe", str(missing), journal=True,
    )

    lines = output.splitlines()
    assert status == 1, output
    assert lines, output
    assert all(re.match(r"<[2-7]>", line) for line in lines), output
    assert not any(re.search(r"\d\d:\d\d:\d\d", line) for line in lines), output
    assert "<7>assistant.offline: Network guard installed" in lines
    assert f"<6>assistant: Configuration: {CONFIG}" in lines
    assert any(line.startswith("<3>assistant: audio file not found") for line in lines), output


def test_terminal_lines_have_time_and_level(tmp_path):
    missing = tmp_path / "missing.wav"
    status, output = run_with_stderr_pipe("--config", CONFIG, "transcribe", str(missing), journal=False)

    assert status == 1, output
    log_lines = [line for line in output.splitlines() if not line.startswith("assistant: ")]
    assert log_lines, output
    assert all(TIMESTAMP_RE.match(line) for line in log_lines), output
    assert not re.search(r"^<\d>", output, re.M), output
    assert re.search(r"^\d\d:\d\d:\d\d INFO    assistant: Configuration: ", output, re.M), output
    assert re.search(r"^assistant: audio file not found", output, re.M), output


def test_log_level_option_after_command(tmp_path):
    process = run_assistant("transcribe", "--log-level", "warning", "--config", CONFIG, str(tmp_path / "x.wav"))
    assert process.returncode == 1
    assert "Configuration:" not in process.stderr
    assert "audio file not found" in process.stderr


def test_log_level_from_environment(tmp_path):
    process = run_assistant(
        "--config", CONFIG, "transcribe", str(tmp_path / "x.wav"), env={"ASSISTANT_LOG_LEVEL": "debug"},
    )
    assert process.returncode == 1
    assert re.search(r"DEBUG +assistant.offline: Network guard installed", process.stderr), process.stderr


def test_log_level_option_overrides_environment(tmp_path):
    process = run_assistant(
        "--log-level", "ERROR", "--config", CONFIG, "transcribe", str(tmp_path / "x.wav"),
        env={"ASSISTANT_LOG_LEVEL": "DEBUG"},
    )
    assert process.returncode == 1
    assert "Network guard installed" not in process.stderr
    assert "Configuration:" not in process.stderr


def test_invalid_log_level_environment_rejected(tmp_path):
    process = run_assistant("transcribe", str(tmp_path / "x.wav"), env={"ASSISTANT_LOG_LEVEL": "verbose"})
    assert process.returncode == 2
    assert "invalid $ASSISTANT_LOG_LEVEL='verbose'" in process.stderr
    assert "DEBUG, INFO, WARNING, ERROR" in process.stderr
