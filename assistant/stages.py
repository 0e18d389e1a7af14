"""The loaded models, and the worker threads that run their blocking calls."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from assistant.agent import Agent
from assistant.config import Settings
from assistant.stt import Transcriber
from assistant.tts import Synthesizer
from assistant.vad import SileroVad
from assistant.wake import WakeDetector

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Models:
    """Every model the pipeline runs, loaded once at start."""

    wake: WakeDetector
    vad: SileroVad
    stt: Transcriber
    agent: Agent
    tts: Synthesizer

    @classmethod
    def load(cls, settings: Settings, config_dir: Path | None = None) -> Models:
        """Load every model (blocking, several seconds); raises ModelError or RuntimeError."""
        started = time.perf_counter()
        models = cls(
            wake=WakeDetector(settings.wake),
            vad=SileroVad(),
            stt=Transcriber(settings.stt, threads=settings.llm.threads),
            agent=Agent(settings.llm, settings.persona),
            tts=Synthesizer(settings.tts, config_dir),
        )
        _LOGGER.info("Models loaded in %.2f s", time.perf_counter() - started)
        return models


class Stage:
    """A single worker thread that runs one stage's blocking calls in order.

    One thread per model keeps each model on one thread, and keeps the event loop
    free while a model computes.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(*args)` in this stage's thread; a failure becomes a StageError."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        except (asyncio.CancelledError, StageError):
            raise
        except Exception as error:
            raise StageError(self.name, error) from error

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class StageError(RuntimeError):
    """A failure inside one pipeline stage; `stage` names it for the error event."""

    def __init__(self, stage: str, error: BaseException) -> None:
        super().__init__(f"{stage} failed: {error}")
        self.stage = stage


async def in_stage(stage: str, awaitable: Awaitable[T]) -> T:
    """Await `awaitable`, turning a failure into a StageError named `stage`."""
    try:
        return await awaitable
    except (asyncio.CancelledError, StageError):
        raise
    except Exception as error:
        raise StageError(stage, error) from error
