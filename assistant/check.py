"""`assistant check`: resolve and load every model, and report what was found."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from assistant.config import Settings

_LOGGER = logging.getLogger(__name__)


@dataclass
class CheckReport:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        status = ["", "OK: every model loaded." if self.ok else f"{len(self.problems)} problem(s):"]
        return "\n".join(self.lines + status + [f"  - {problem}" for problem in self.problems])

    def attempt(self, stage: str, action: Callable[[], list[str]]) -> None:
        """Run one stage's check; its lines go to the report, its failure to the problems."""
        try:
            self.lines.extend(f"{stage}: {line}" for line in action())
        except Exception as error:  # noqa: BLE001 - every failure is reported, then the next stage runs
            _LOGGER.debug("%s check failed", stage, exc_info=True)
            self.problems.append(f"{stage}: {error}")
            self.lines.append(f"{stage}: FAILED")


def _size(path: Path) -> str:
    if path.is_dir():
        total = sum(item.stat().st_size for item in path.iterdir() if item.is_file())
    else:
        total = path.stat().st_size
    return f"{total / 1e6:.1f} MB"


def run_checks(settings: Settings, config_path: Path) -> CheckReport:
    report = CheckReport(lines=[f"config: {config_path}"])
    report.attempt("wake", lambda: _check_wake(settings))
    report.attempt("vad", _check_vad)
    report.attempt("stt", lambda: _check_stt(settings))
    report.attempt("llm", lambda: _check_llm(settings))
    report.attempt("tts", lambda: _check_tts(settings, config_path.parent))
    return report


def _check_wake(settings: Settings) -> list[str]:
    from assistant.wake import WakeDetector

    detector = WakeDetector(settings.wake)
    lines = [f"{name} -> {path} ({_size(path)})" for name, path in detector.model_paths.items()]
    lines.append(f"threshold {settings.wake.threshold}, refractory {settings.wake.refractory_seconds} s")
    detector.close()
    return lines


def _check_vad() -> list[str]:
    from assistant.vad import SileroVad

    vad = SileroVad()
    return [f"Silero -> {vad.model_path} ({_size(vad.model_path)})"]


def _check_stt(settings: Settings) -> list[str]:
    from assistant.stt import Transcriber

    transcriber = Transcriber(settings.stt, threads=settings.llm.threads)
    kind = "multilingual" if transcriber.multilingual else "English only"
    return [
        f"Whisper {settings.stt.model} -> {transcriber.model_path / 'model.bin'} ({_size(transcriber.model_path / 'model.bin')})",
        f"{kind}, language {settings.stt.language}, compute type {settings.stt.compute_type}",
    ]


def _check_llm(settings: Settings) -> list[str]:
    from assistant.agent import Agent

    agent = Agent(settings.llm, settings.persona)
    metadata = agent.metadata
    return [
        f"{settings.llm.model} -> {agent.model_path} ({_size(agent.model_path)})",
        f"architecture {metadata.get('general.architecture', '?')}, name {metadata.get('general.name', '?')!r}, "
        f"chat format {agent.prompt_format.name}, context {settings.llm.context_tokens} tokens",
    ]


def _check_tts(settings: Settings, config_dir: Path) -> list[str]:
    from assistant.tts import Synthesizer

    synthesizer = Synthesizer(settings.tts, config_dir)
    return [
        f"Piper {settings.tts.voice} -> {synthesizer.files.model} ({_size(synthesizer.files.model)})",
        f"sample rate {synthesizer.sample_rate_hz} Hz, espeak voice {synthesizer.language}",
    ]
