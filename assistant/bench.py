"""Latency benchmark: the full pipeline on real recordings, paced at real time.

    python -m assistant.bench [--runs 3] [--report reports/bench] [--audio-dir DIR]

Each case is a wake word clip, a short pause, a spoken command and silence. The
daemon runs as a child process with `--realtime`, once with streaming and once
in sequential mode (`[llm] stream = false`), and the per-stage times come from
its events. The true ends of the wake phrase and of the command are found with
the voice activity detector on the input itself. Results go to a Markdown table
and a PNG chart in the report folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from assistant.audio import SAMPLE_RATE_HZ, read_audio_file, split_frames
from assistant.vad import WINDOW_SECONDS, SileroVad

DEFAULT_AUDIO_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio"
WAKE_CLIP = "wyoming_oww_hey_jarvis.16k.wav"
CASES = {
    "statement": "stereo_diarization.left.16k.wav",
    "short": "stereo_diarization.right.16k.wav",
    "pauses": "jfk.16k.wav",
}
PAUSE_AFTER_WAKE_SECONDS = 0.3
TRAILING_SILENCE_SECONDS = 3.0
IDLE_SECONDS = 30.0
# The daemon evaluates the persona's prompt right after `ready`; idle CPU is
# measured from this many seconds after `ready` on.
IDLE_SETTLE_SECONDS = 8.0
_EVENT_WAIT_SECONDS = 120.0

# Stages shown in the table and chart, in pipeline order.
STAGES = [
    ("wake_delay", "wake detection delay"),
    ("end_of_speech_delay", "end-of-speech detection delay"),
    ("transcription", "transcription after end of speech"),
    ("first_token", "first LLM token after transcript"),
    ("first_sentence", "first full sentence after transcript"),
    ("first_synthesis", "first synthesized audio after first sentence"),
    ("time_to_first_audio", "time to first audio"),
    ("ready", "start to ready"),
    ("peak_rss_mb", "peak resident memory (MB)"),
]
CHART_STAGES = ["end_of_speech_delay", "transcription", "first_sentence", "first_synthesis"]


@dataclass
class Case:
    name: str
    path: Path
    wake_end_seconds: float
    speech_end_seconds: float


@dataclass
class RunResult:
    case: str
    mode: str
    figures: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def speech_end_seconds(samples: np.ndarray, vad: SileroVad) -> float:
    """Return where the last speech window of `samples` ends."""
    vad.reset()
    probabilities = []
    for frame in split_frames(samples):
        probabilities += vad.process(frame)
    speech = [index for index, probability in enumerate(probabilities) if probability >= 0.5]
    if not speech:
        raise ValueError("no speech found in the clip")
    return (speech[-1] + 1) * WINDOW_SECONDS


def build_case(name: str, clip: str, audio_dir: Path, folder: Path, vad: SileroVad) -> Case:
    wake = read_audio_file(audio_dir / WAKE_CLIP)
    command = read_audio_file(audio_dir / clip)
    pause = np.zeros(int(PAUSE_AFTER_WAKE_SECONDS * SAMPLE_RATE_HZ), dtype=np.int16)
    tail = np.zeros(int(TRAILING_SILENCE_SECONDS * SAMPLE_RATE_HZ), dtype=np.int16)
    path = folder / f"{name}.wav"
    soundfile.write(path, np.concatenate([wake, pause, command, tail]), SAMPLE_RATE_HZ, subtype="PCM_16")
    command_start = (len(wake) + len(pause)) / SAMPLE_RATE_HZ
    return Case(
        name=name,
        path=path,
        wake_end_seconds=speech_end_seconds(wake, vad),
        speech_end_seconds=command_start + speech_end_seconds(command, vad),
    )


def run_daemon(case: Case, mode: str, config: Path | None, folder: Path) -> tuple[list[dict], float]:
    """Run the daemon on one case; return its events and its peak resident memory in MB."""
    events_path = folder / f"{case.name}.{mode}.events.jsonl"
    command = [
        sys.executable, "-m", "assistant", "--log-level", "WARNING", "run",
        "--input", str(case.path), "--output", str(folder / f"{case.name}.{mode}.wav"),
        "--events", str(events_path), "--realtime",
    ]
    if config is not None:
        command[4:4] = ["--config", str(config)]
    env = {**os.environ, "ASSISTANT_LLM__STREAM": "true" if mode == "streaming" else "false",
           "ASSISTANT_LISTEN__FOLLOW_UP_SECONDS": "0"}
    stderr_path = folder / f"{case.name}.{mode}.stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        # wait4 rather than wait: it also returns the child's peak resident memory.
        _, status, usage = os.wait4(process.pid, 0)
    exit_code = os.waitstatus_to_exitcode(status)
    if exit_code != 0:
        raise RuntimeError(f"daemon exited with {exit_code}: {stderr_path.read_text()[-800:]}")
    events = [json.loads(line) for line in events_path.read_text().splitlines() if line.strip()]
    return events, usage.ru_maxrss / 1024


def first(events: list[dict], name: str) -> dict:
    for event in events:
        if event["event"] == name:
            return event
    raise KeyError(f"no {name!r} event")


def measure(case: Case, events: list[dict]) -> dict[str, float]:
    """Per-stage seconds from one run's events; input time t is wall time ready + t."""
    ready = first(events, "ready")
    origin = ready["time"]
    wake = first(events, "wake")
    speech_end = first(events, "speech_end")
    transcript = first(events, "transcript")
    reply_start = first(events, "reply_start")
    sentence = first(events, "sentence")
    audio_start = first(events, "audio_start")
    return {
        "ready": ready["seconds"],
        "wake_delay": wake["time"] - origin - case.wake_end_seconds,
        "end_of_speech_delay": speech_end["time"] - origin - case.speech_end_seconds,
        "transcription": transcript["time"] - speech_end["time"],
        "first_token": reply_start["time"] - transcript["time"],
        "first_sentence": sentence["time"] - transcript["time"],
        "first_synthesis": audio_start["time"] - sentence["time"],
        "time_to_first_audio": audio_start["time"] - origin - case.speech_end_seconds,
    }


def measure_idle_cpu(config: Path | None, folder: Path) -> dict[str, float]:
    """CPU share of the wake word stage alone, and of the whole daemon, on idle audio."""
    from assistant.config import WakeSettings
    from assistant.wake import WakeDetector

    detector = WakeDetector(WakeSettings())
    audio_dir = DEFAULT_AUDIO_DIR
    speech = np.concatenate([read_audio_file(audio_dir / name) for name in ("jfk.16k.wav", "fleurs_fr_003.16k.wav")])
    repeats = int(np.ceil(IDLE_SECONDS * SAMPLE_RATE_HZ / len(speech)))
    audio = np.tile(speech, repeats)[: int(IDLE_SECONDS * SAMPLE_RATE_HZ)]
    started = time.thread_time()
    for frame in split_frames(audio):
        detector.process(frame)
    wake_share = (time.thread_time() - started) / IDLE_SECONDS * 100

    silence_path = folder / "idle.wav"
    soundfile.write(silence_path, audio, SAMPLE_RATE_HZ, subtype="PCM_16")
    events_path = folder / "idle.events.jsonl"
    command = [sys.executable, "-m", "assistant", "--log-level", "WARNING", "run", "--input", str(silence_path),
               "--output", str(folder / "idle.out.wav"), "--events", str(events_path), "--realtime"]
    if config is not None:
        command[4:4] = ["--config", str(config)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready_cpu, ready_wall = _cpu_at_ready(process.pid, events_path)
    _, _, usage = os.wait4(process.pid, 0)
    total_cpu = usage.ru_utime + usage.ru_stime
    daemon_share = (total_cpu - ready_cpu) / (time.monotonic() - ready_wall) * 100
    return {"wake_stage_cpu_percent": wake_share, "daemon_idle_cpu_percent": daemon_share}


def _cpu_at_ready(pid: int, events_path: Path) -> tuple[float, float]:
    """Wait for the `ready` event and the settling time, then read the process's CPU seconds from /proc."""
    deadline = time.monotonic() + _EVENT_WAIT_SECONDS
    while time.monotonic() < deadline:
        if events_path.exists() and '"ready"' in events_path.read_text():
            time.sleep(IDLE_SETTLE_SECONDS)
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks = os.sysconf("SC_CLK_TCK")
            # utime and stime are fields 14 and 15 of /proc/PID/stat (1-based, counting pid and comm).
            return (int(fields[11]) + int(fields[12])) / ticks, time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"no ready event in {events_path} after {_EVENT_WAIT_SECONDS} s")


def summarize(results: list[RunResult], key: str, mode: str) -> tuple[float, float, float] | None:
    values = [r.figures[key] for r in results if r.mode == mode and key in r.figures]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def markdown_report(results: list[RunResult], idle: dict[str, float], runs: int) -> str:
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{runs} run(s) per case and mode; cases: {', '.join(CASES)}.",
        "",
        "| stage | streaming median (min–max) | sequential median (min–max) |",
        "|---|---|---|",
    ]
    for key, label in STAGES:
        cells = []
        for mode in ("streaming", "sequential"):
            summary = summarize(results, key, mode)
            cells.append("n/a" if summary is None else f"{summary[0]:.2f} ({summary[1]:.2f}–{summary[2]:.2f})")
        unit = "" if key == "peak_rss_mb" else " s"
        lines.append(f"| {label}{unit} | {cells[0]} | {cells[1]} |")

    streaming = summarize(results, "time_to_first_audio", "streaming")
    sequential = summarize(results, "time_to_first_audio", "sequential")
    if streaming and sequential:
        lines += ["", f"Time to first audio, streaming / sequential (medians): {streaming[0] / sequential[0]:.2f}"]
    lines += [
        "",
        f"Wake word stage while idle: {idle['wake_stage_cpu_percent']:.1f}% of one core; "
        f"whole daemon while idle: {idle['daemon_idle_cpu_percent']:.1f}% of one core.",
    ]
    failures = [r for r in results if r.error]
    for failure in failures:
        lines.append(f"- run failed: {failure.case} ({failure.mode}): {failure.error}")
    return "\n".join(lines) + "\n"


def chart(results: list[RunResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, bottoms, bars = [], [], {key: [] for key in CHART_STAGES}
    for case in CASES:
        for mode in ("streaming", "sequential"):
            subset = [r for r in results if r.case == case and r.mode == mode and not r.error]
            if not subset:
                continue
            labels.append(f"{case}\n{mode}")
            for key in CHART_STAGES:
                bars[key].append(statistics.median(r.figures[key] for r in subset))
    figure, axes = plt.subplots(figsize=(max(6, len(labels) * 1.3), 4.5))
    bottoms = [0.0] * len(labels)
    for key in CHART_STAGES:
        axes.bar(labels, bars[key], bottom=bottoms, label=dict(STAGES)[key])
        bottoms = [b + v for b, v in zip(bottoms, bars[key])]
    axes.set_ylabel("seconds after the end of the user's speech (median)")
    axes.set_title("Time to first audio by stage")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per case and mode (default 3)")
    parser.add_argument("--report", default="reports/bench", help="folder for the Markdown table and the PNG chart")
    parser.add_argument("--config", type=Path, help="configuration file for the daemon")
    parser.add_argument("--audio-dir", type=Path, default=DEFAULT_AUDIO_DIR, help="folder of the test recordings")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases to run")
    args = parser.parse_args(argv)

    report = Path(args.report)
    report.mkdir(parents=True, exist_ok=True)
    vad = SileroVad()
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="assistant-bench-") as temporary:
        folder = Path(temporary)
        cases = [build_case(name, CASES[name], args.audio_dir, folder, vad) for name in args.cases.split(",")]
        for run_index in range(args.runs):
            for case in cases:
                for mode in ("streaming", "sequential"):
                    result = RunResult(case=case.name, mode=mode)
                    try:
                        events, peak_rss_mb = run_daemon(case, mode, args.config, folder)
                        result.figures = measure(case, events)
                        result.figures["peak_rss_mb"] = peak_rss_mb
                    except (RuntimeError, KeyError, OSError) as error:
                        result.error = str(error)
                    results.append(result)
                    print(f"run {run_index + 1}/{args.runs} {case.name} {mode}: "
                          f"{result.error or {k: round(v, 3) for k, v in result.figures.items()}}", flush=True)
        idle = measure_idle_cpu(args.config, folder)

    table = markdown_report(results, idle, args.runs)
    (report / "benchmark.md").write_text(table)
    (report / "runs.json").write_text(json.dumps([r.__dict__ for r in results], indent=1))
    chart(results, report / "time_to_first_audio.png")
    print(table)
    print(f"report written to {report}/")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
