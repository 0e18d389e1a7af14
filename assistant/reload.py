"""Configuration reload on SIGHUP: re-read the file, reload only the models that need it, switch between turns."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.config import AudioSettings, ConfigError, Settings, load_settings
from assistant.events import EventLog
from assistant.models import ModelError
from assistant.notify import SystemdNotifier

if TYPE_CHECKING:
    from assistant.pipeline import Pipeline

_LOGGER = logging.getLogger(__name__)

# Settings that a model reads only when it loads, by field of stages.Models. A
# change to any of them reloads that model; every other setting is read at run
# time and applies from the next turn. The agent builds its stop strings at
# load, so [llm] stop is listed with it. The voice activity detector has no
# settings.
LOAD_TIME_SETTINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "wake": (("wake", "models"),),
    "stt": (("stt", "model"), ("stt", "compute_type"), ("stt", "language"), ("llm", "threads")),
    "agent": (
        ("llm", "model"), ("llm", "chat_format"), ("llm", "context_tokens"),
        ("llm", "threads"), ("llm", "seed"), ("llm", "stop"),
    ),
    "tts": (("tts", "voice"), ("tts", "length_scale"), ("tts", "speaker_id")),
}

# The microphone, the speaker and the earcons are opened or loaded once, at start.
RESTART_SETTINGS: tuple[tuple[str, str], ...] = tuple(("audio", key) for key in AudioSettings.model_fields)


def _setting(settings: Settings, section: str, key: str) -> Any:
    return getattr(getattr(settings, section), key)


def _changed(old: Settings, new: Settings, keys: tuple[tuple[str, str], ...]) -> list[str]:
    return [f"{section}.{key}" for section, key in keys if _setting(old, section, key) != _setting(new, section, key)]


def models_to_reload(old: Settings, new: Settings) -> list[str]:
    """List the stages.Models fields whose load-time settings differ between `old` and `new`."""
    return [name for name, keys in LOAD_TIME_SETTINGS.items() if _changed(old, new, keys)]


def restart_only_changes(old: Settings, new: Settings) -> list[str]:
    """List the changed settings, as "section.key", that take effect only after a restart."""
    return _changed(old, new, RESTART_SETTINGS)


def load_models(names: list[str], settings: Settings, config_dir: Path) -> dict[str, Any]:
    """Load the named stages.Models fields with `settings` (blocking); raise ModelError or RuntimeError."""
    from assistant.agent import Agent
    from assistant.stt import Transcriber
    from assistant.tts import Synthesizer
    from assistant.wake import WakeDetector

    loaders = {
        "wake": lambda: WakeDetector(settings.wake),
        "stt": lambda: Transcriber(settings.stt, threads=settings.llm.threads),
        "agent": lambda: Agent(settings.llm, settings.persona),
        "tts": lambda: Synthesizer(settings.tts, config_dir),
    }
    return {name: loaders[name]() for name in names}


class ConfigReloader:
    """Re-read the daemon's configuration file on request and apply it to the running pipeline.

    A request made before the pipeline exists (models still loading) runs once it
    is attached. Requests made during a reload are merged into one more reload
    after it, so the file as last written is the one applied. A file that fails
    to load or validate, or a model that fails to load, keeps every previous
    setting and model.
    """

    def __init__(self, config_path: Path, settings: Settings, notifier: SystemdNotifier, events: EventLog) -> None:
        self.config_path = config_path
        self.settings = settings
        self._notifier = notifier
        self._events = events
        self._pipeline: Pipeline | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending = False

    def attach(self, pipeline: Pipeline) -> None:
        """Apply reloads to `pipeline` from now on, starting one if a request is waiting."""
        self._pipeline = pipeline
        if self._pending:
            self.request()

    def request(self) -> None:
        """Start a reload in the background, or queue one; call it from the event loop."""
        if self._pipeline is None:
            _LOGGER.info("Reload requested while the models load; it runs once they are ready")
            self._pending = True
            return
        if self._task is not None and not self._task.done():
            self._pending = True
            return
        self._pending = False
        self._task = asyncio.create_task(self._reload_until_current(), name="reload")

    async def close(self) -> None:
        """Cancel a reload in progress and wait for it to end."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _reload_until_current(self) -> None:
        while True:
            self._notifier.reloading()
            try:
                await self.reload()
            except Exception:  # noqa: BLE001 - a failed reload must leave the daemon running
                _LOGGER.exception("Reloading %s failed; keeping the previous settings", self.config_path)
            # Not sent when cancelled: the daemon is stopping and has sent STOPPING=1.
            self._notifier.ready()
            if not self._pending:
                return
            self._pending = False

    async def reload(self) -> bool:
        """Re-read the configuration file and apply it; return False if the previous settings were kept."""
        assert self._pipeline is not None
        started = time.perf_counter()
        path = self.config_path
        try:
            new, _ = load_settings(path)
        except ConfigError as error:
            return self._keep_previous(str(error))

        names = models_to_reload(self.settings, new)
        for key in restart_only_changes(self.settings, new):
            _LOGGER.warning("%s changed in %s; it takes effect after a restart of the daemon", key, path)

        models = None
        if names:
            _LOGGER.info("Loading the changed models: %s", ", ".join(names))
            # NOTE: the old and the new model are both in memory until the swap. A stop
            # during the load exits only once it ends, because a load cannot be interrupted.
            try:
                loaded = await asyncio.to_thread(load_models, names, new, path.parent)
            except (ModelError, RuntimeError, OSError) as error:
                return self._keep_previous(f"cannot load the new models: {error}")
            models = dataclasses.replace(self._pipeline.models, **loaded)

        # Waits for the turn in progress, if any, to end.
        await self._pipeline.apply_settings(new, models)
        self.settings = new
        self._events.emit("reload", config=str(path), models=names, seconds=round(time.perf_counter() - started, 3))
        return True

    def _keep_previous(self, reason: str) -> bool:
        _LOGGER.error("Reloading %s failed; keeping the previous settings: %s", self.config_path, reason)
        self._events.emit("reload_failed", config=str(self.config_path), message=reason)
        return False
