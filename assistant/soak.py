"""Soak run: one daemon process replies to many wake-to-reply cycles in a row.

    python -m assistant.soak [--cycles 200] [--report FILE.json] [--audio-dir DIR]

The input is one long file of real recordings: per cycle the wake word clip, a
short pause, a spoken command (rotating through three) and silence. The daemon
reads it as fast as it can answer (`assistant run --input`, not paced), with
follow-up questions off. At each `reply` event the daemon's resident memory is
read from /proc/PID/status. The report gives the cycles, wakes, replies, error
events, memory after the warm-up and at the end, and the total time. The exit
status is 1 when a cycle got no reply, an error event came, or the daemon failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from assistant.audio import SAMPLE_RATE_HZ, AudioFileError, read_audio_file
from assistant.bench import DEFAULT_AUDIO_DIR, WAKE_CLIP
from assistant.config import PACKAGED_CONFIG

COMMAND_CLIPS = ("stereo_diarization.left.16k.wav", "stereo_diarization.right.16k.wav", "jfk.16k.wav")
PAUSE_AFTER_WAKE_SECONDS = 0.3
SILENCE_AFTER_COMMAND_SECONDS = 2.5
DEFAULT_CYCLES = 200
DEFAULT_WARM_UP_CYCLES = 10
# Time allowed per cycle before the run counts as hung, far above the few seconds a cycle takes.
DEFAULT_SECONDS_PER_CYCLE = 60.0
_POLL_SECONDS = 0.2


@dataclass
class SoakReport:
    cycles: int
    cycles_completed: int = 0
    wakes: int = 0
    replies: int = 0
    errors: int = 0
    error_messages: list[str] = field(default_factory=list)
    cycles_without_reply: list[int] = field(default_factory=list)
    #: Resident memory in MB read at each reply event, in order.
    rss_mb: list[float] = field(default_factory=list)
    warm_up_cycles: int = DEFAULT_WARM_UP_CYCLES
    rss_after_warm_up_mb: float | None = None
    rss_end_mb: float | None = None
    rss_growth_percent: float | None = None
    peak_rss_mb: float | None = None
    audio_seconds: float = 0.0
    total_seconds: float = 0.0
    daemon_exit_code: int | None = None
    timed_out: bool = False
    machine: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.daemon_exit_code == 0
            and not self.timed_out
            and self.errors == 0
            and self.wakes == self.cycles
            and self.cycles_completed == self.cycles
        )

    def summary(self) -> str:
        lines = [
            f"machine: {self.machine}",
            f"cycles completed: {self.cycles_completed} of {self.cycles}",
            f"wakes: {self.wakes}, replies: {self.replies}, error events: {self.errors}",
        ]
        if self.cycles_without_reply:
            lines.append(f"cycles without a reply: {self.cycles_without_reply}")
        lines += [f"  error: {message}" for message in self.error_messages]
        if self.rss_growth_percent is not None:
            lines.append(
                f"resident memory: {self.rss_after_warm_up_mb:.1f} MB after cycle {self.warm_up_cycles}, "
                f"{self.rss_end_mb:.1f} MB at the end ({self.rss_growth_percent:+.1f} %), "
                f"peak {self.peak_rss_mb:.1f} MB"
            )
        lines.append(f"time: {self.total_seconds:.0f} s for {self.audio_seconds:.0f} s of audio")
        if self.timed_out:
            lines.append("the daemon timed out and was stopped")
        elif self.daemon_exit_code != 0:
            lines.append(f"the daemon exited with status {self.daemon_exit_code}")
        elif self.wakes < self.cycles:
            lines.append(f"the daemon exited with status 0 after {self.wakes} of {self.cycles} wake words")
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)


def build_input(audio_dir: Path, cycles: int, path: Path) -> float:
    """Write the soak input to `path` as 16 kHz mono WAV; return its length in seconds."""
    wake = read_audio_file(audio_dir / WAKE_CLIP)
    commands = [read_audio_file(audio_dir / name) for name in COMMAND_CLIPS]
    pause = np.zeros(int(PAUSE_AFTER_WAKE_SECONDS * SAMPLE_RATE_HZ), dtype=np.int16)
    silence = np.zeros(int(SILENCE_AFTER_COMMAND_SECONDS * SAMPLE_RATE_HZ), dtype=np.int16)
    frames = 0
    with soundfile.SoundFile(path, "w", SAMPLE_RATE_HZ, 1, subtype="PCM_16") as file:
        for cycle in range(cycles):
            for part in (wake, pause, commands[cycle % len(commands)], silence):
                file.write(part)
                frames += len(part)
    return frames / SAMPLE_RATE_HZ


def resident_memory_mb(pid: int) -> tuple[float, float] | None:
    """Return the process's resident memory and its peak (VmRSS, VmHWM) in MB, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = {}
    for line in status.splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    if len(values) < 2:
        return None
    return values["VmRSS"], values["VmHWM"]


class EventTail:
    """Read the lines a running daemon appends to its --events file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = ""

    def new_events(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as file:
            file.seek(self._offset)
            text = file.read()
            self._offset = file.tell()
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        return [json.loads(line) for line in lines if line.strip()]


def run_soak(
    cycles: int,
    audio_dir: Path,
    folder: Path,
    config: Path = PACKAGED_CONFIG,
    warm_up_cycles: int = DEFAULT_WARM_UP_CYCLES,
    timeout_seconds: float | None = None,
) -> SoakReport:
    """Build the input, run one daemon on it, and count its events and memory."""
    report = SoakReport(cycles=cycles, warm_up_cycles=warm_up_cycles, machine=describe_machine())
    input_path = folder / "soak-input.wav"
    events_path = folder / "soak-events.jsonl"
    report.audio_seconds = build_input(audio_dir, cycles, input_path)
    timeout_seconds = timeout_seconds or cycles * DEFAULT_SECONDS_PER_CYCLE + 120.0

    command = [
        # INFO, so that the log shows why the daemon stopped if it ends early.
        sys.executable, "-m", "assistant", "--log-level", "INFO", "run", "--config", str(config),
        "--input", str(input_path), "--output", str(folder / "soak-replies.wav"), "--events", str(events_path),
    ]
    env = {**os.environ, "ASSISTANT_LISTEN__FOLLOW_UP_SECONDS": "0"}
    tail = EventTail(events_path)
    replied_cycles: set[int] = set()
    started = time.monotonic()
    with (folder / "soak-daemon.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                finished = process.poll() is not None
                for event in tail.new_events():
                    _count(event, report, replied_cycles, process.pid)
                if finished:
                    break
                if time.monotonic() - started > timeout_seconds:
                    report.timed_out = True
                    process.kill()
                    process.wait(timeout=30)
                    break
                time.sleep(_POLL_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    report.total_seconds = round(time.monotonic() - started, 1)
    report.daemon_exit_code = process.returncode
    report.cycles_completed = len(replied_cycles)
    report.cycles_without_reply = [cycle for cycle in range(1, report.wakes + 1) if cycle not in replied_cycles]
    _summarize_memory(report)
    return report


def _count(event: dict, report: SoakReport, replied_cycles: set[int], pid: int) -> None:
    name = event["event"]
    if name == "wake":
        report.wakes += 1
    elif name == "reply":
        report.replies += 1
        if report.wakes:
            replied_cycles.add(report.wakes)
        memory = resident_memory_mb(pid)
        if memory is not None:
            report.rss_mb.append(round(memory[0], 1))
            report.peak_rss_mb = round(memory[1], 1)
    elif name == "error":
        report.errors += 1
        if len(report.error_messages) < 10:
            report.error_messages.append(f"{event.get('stage')}: {event.get('message')}")


def _summarize_memory(report: SoakReport) -> None:
    if not report.rss_mb:
        return
    # The baseline is the reply of the warm-up's last cycle, or the first reply of a shorter run.
    baseline_index = min(report.warm_up_cycles, len(report.rss_mb)) - 1
    report.rss_after_warm_up_mb = report.rss_mb[max(baseline_index, 0)]
    report.rss_end_mb = report.rss_mb[-1]
    report.rss_growth_percent = round(100.0 * (report.rss_end_mb / report.rss_after_warm_up_mb - 1.0), 2)


def describe_machine() -> str:
    return f"{platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=DEFAULT_CYCLES, help="wake-to-reply cycles in the input")
    parser.add_argument("--warm-up", type=int, default=DEFAULT_WARM_UP_CYCLES,
                        help="cycles after which the memory baseline is read")
    parser.add_argument("--report", metavar="FILE.json", help="write the figures to this JSON file")
    parser.add_argument("--config", metavar="PATH", default=str(PACKAGED_CONFIG), help="configuration file")
    parser.add_argument("--audio-dir", metavar="DIR", default=str(DEFAULT_AUDIO_DIR),
                        help="folder of the test recordings")
    parser.add_argument("--work-dir", metavar="DIR",
                        help="keep the input, events, replies and daemon log here (default: a temporary folder)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help=f"stop the daemon after this long (default: {DEFAULT_SECONDS_PER_CYCLE:.0f} s per cycle)")
    args = parser.parse_args(argv)
    if args.cycles < 1:
        parser.error("--cycles must be at least 1")

    with tempfile.TemporaryDirectory(prefix="assistant-soak-") as temporary:
        folder = Path(args.work_dir) if args.work_dir else Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            report = run_soak(args.cycles, Path(args.audio_dir), folder, Path(args.config), args.warm_up, args.timeout)
        except AudioFileError as error:
            print(f"assistant.soak: {error}; give the folder of the test recordings with --audio-dir", file=sys.stderr)
            return 1
        if not report.ok:
            log_tail = (folder / "soak-daemon.log").read_text(errors="replace")[-4000:]
            print(f"daemon log (last lines):\n{log_tail}", file=sys.stderr)

    print(report.summary())
    if args.report:
        Path(args.report).write_text(json.dumps({**asdict(report), "ok": report.ok}, indent=2) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
