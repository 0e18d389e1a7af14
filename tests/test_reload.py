"""Configuration reload: which models a change reloads, ConfigReloader, and Pipeline.apply_settings."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path

import numpy as np
import pytest

from assistant.audio import FRAME_SECONDS
from assistant.config import Settings, load_settings
from assistant.events import EventLog
from assistant.notify import SystemdNotifier
from assistant.pipeline import Pipeline, State
from assistant.reload import ConfigReloader, models_to_reload, restart_only_changes
from assistant.stages import Models
from conftest import read_events
from test_notify import drain, path_socket  # noqa: F401 - path_socket is a fixture

TIMEOUT_SECONDS = 5


def changed(**sections: dict) -> Settings:
    """Return the default settings with the given sections updated, e.g. changed(llm={"seed": 1})."""
    settings = Settings()
    return settings.model_copy(
        update={name: getattr(settings, name).model_copy(update=values) for name, values in sections.items()}
    )


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({"persona": {"name": "Friday", "max_sentences": 1}}, []),
        ({"wake": {"threshold": 0.7, "barge_in_threshold": 0.9}}, []),
        ({"listen": {"silence_seconds": 1.5}}, []),
        ({"stt": {"beam_size": 2}}, []),
        # The language is checked against the model when it loads.
        ({"stt": {"language": "auto"}}, ["stt"]),
        ({"llm": {"temperature": 0.1, "max_tokens": 10, "top_k": 5}}, []),
        ({"wake": {"models": ["alexa"]}}, ["wake"]),
        ({"stt": {"model": "base"}}, ["stt"]),
        ({"llm": {"model": "/models/other.gguf"}}, ["agent"]),
        ({"llm": {"stop": ["\n", "User:"]}}, ["agent"]),
        ({"llm": {"threads": 2}}, ["stt", "agent"]),
        ({"tts": {"length_scale": 1.2}}, ["tts"]),
        ({"audio": {"input_device": "USB"}}, []),
    ],
)
def test_models_to_reload(sections, expected):
    assert models_to_reload(Settings(), changed(**sections)) == expected


def test_audio_device_change_needs_restart():
    new = changed(audio={"input_device": "USB", "output_device": 2})
    assert restart_only_changes(Settings(), new) == ["audio.input_device", "audio.output_device"]
    assert restart_only_changes(Settings(), changed(audio={"earcons": False})) == ["audio.earcons"]
    assert restart_only_changes(Settings(), changed(persona={"name": "Friday"})) == []


# --- ConfigReloader ------------------------------------------------------------------


class FakePipeline:
    """The two members of Pipeline that ConfigReloader uses, recording each apply_settings call."""

    def __init__(self, models: Models) -> None:
        self.models = models
        self.applied: list[tuple[Settings, Models | None]] = []
        self.apply_started = asyncio.Event()
        self.may_apply = asyncio.Event()
        self.may_apply.set()

    async def apply_settings(self, settings: Settings, models: Models | None = None) -> None:
        self.apply_started.set()
        await self.may_apply.wait()
        self.applied.append((settings, models))
        if models is not None:
            self.models = models


@pytest.fixture
def notify_socket(path_socket) -> tuple[socket.socket, SystemdNotifier]:
    """Return a bound datagram socket and a SystemdNotifier that sends to it."""
    receiver, path = path_socket
    return receiver, SystemdNotifier({"NOTIFY_SOCKET": path})


def received(receiver: socket.socket) -> list[str]:
    """Return the first line of each datagram queued on `receiver`."""
    return [datagram.decode().split("\n")[0] for datagram in drain(receiver)]


def placeholder_models() -> Models:
    return Models(wake=object(), vad=object(), stt=object(), agent=object(), tts=object())


def make_reloader(tmp_path: Path, notifier: SystemdNotifier, text: str) -> tuple[ConfigReloader, Path]:
    config = tmp_path / "config.toml"
    config.write_text(text)
    settings, path = load_settings(config)
    events = EventLog(tmp_path / "events.jsonl")
    return ConfigReloader(path, settings, notifier, events), path


async def wait_until_done(reloader: ConfigReloader) -> None:
    await asyncio.wait_for(reloader._task, TIMEOUT_SECONDS)


async def reload_file(
    tmp_path: Path, notifier: SystemdNotifier, old_text: str, new_text: str
) -> tuple[ConfigReloader, FakePipeline, Settings]:
    """Start from a file containing `old_text`, replace it with `new_text` and reload once.

    Returns the reloader, the pipeline it applied settings to, and the settings before the reload.
    """
    reloader, path = make_reloader(tmp_path, notifier, old_text)
    old_settings = reloader.settings
    pipeline = FakePipeline(placeholder_models())
    reloader.attach(pipeline)

    path.write_text(new_text)
    reloader.request()
    await wait_until_done(reloader)
    return reloader, pipeline, old_settings


@pytest.mark.asyncio
async def test_reloader_applies_persona_without_models(tmp_path, notify_socket):
    receiver, notifier = notify_socket
    reloader, pipeline, _ = await reload_file(
        tmp_path, notifier,
        "[persona]\nmax_sentences = 2\n",
        '[persona]\nname = "Friday"\nmax_sentences = 1\n[wake]\nthreshold = 0.6\n',
    )

    [(settings, models)] = pipeline.applied
    assert models is None
    assert (settings.persona.name, settings.persona.max_sentences, settings.wake.threshold) == ("Friday", 1, 0.6)
    assert reloader.settings is settings
    [event] = read_events(tmp_path / "events.jsonl")
    assert (event["event"], event["config"], event["models"]) == ("reload", str(reloader.config_path), [])
    assert received(receiver) == ["RELOADING=1", "READY=1"]


@pytest.mark.asyncio
async def test_reloader_keeps_settings_of_invalid_file(tmp_path, notify_socket, caplog):
    receiver, notifier = notify_socket
    reloader, pipeline, old_settings = await reload_file(
        tmp_path, notifier, "[persona]\nmax_sentences = 2\n", "[persona]\nmax_sentences = 0\n"
    )

    assert pipeline.applied == []
    assert reloader.settings is old_settings
    [event] = read_events(tmp_path / "events.jsonl")
    assert event["event"] == "reload_failed"
    assert "persona.max_sentences = 0" in event["message"]
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1
    assert "keeping the previous settings" in errors[0].getMessage()
    assert "persona.max_sentences = 0" in errors[0].getMessage()
    assert received(receiver) == ["RELOADING=1", "READY=1"]


@pytest.mark.asyncio
async def test_reloader_keeps_settings_of_unparsable_file(tmp_path, notify_socket):
    _, notifier = notify_socket
    reloader, pipeline, old_settings = await reload_file(tmp_path, notifier, "", "[persona\n")

    assert pipeline.applied == []
    assert reloader.settings is old_settings
    [event] = read_events(tmp_path / "events.jsonl")
    assert "not valid TOML" in event["message"]


@pytest.mark.asyncio
async def test_reloader_request_before_attach_runs_on_attach(tmp_path, notify_socket):
    _, notifier = notify_socket
    reloader, path = make_reloader(tmp_path, notifier, "")
    reloader.request()
    assert reloader._task is None

    path.write_text("[persona]\nmax_sentences = 3\n")
    pipeline = FakePipeline(placeholder_models())
    reloader.attach(pipeline)
    await wait_until_done(reloader)

    [(settings, _)] = pipeline.applied
    assert settings.persona.max_sentences == 3


async def start_held_reload(
    tmp_path: Path, notifier: SystemdNotifier, new_text: str
) -> tuple[ConfigReloader, FakePipeline, Path]:
    """Start a reload of `new_text` and return once it waits in apply_settings for `may_apply`."""
    reloader, path = make_reloader(tmp_path, notifier, "")
    pipeline = FakePipeline(placeholder_models())
    pipeline.may_apply.clear()
    reloader.attach(pipeline)

    path.write_text(new_text)
    reloader.request()
    await asyncio.wait_for(pipeline.apply_started.wait(), TIMEOUT_SECONDS)
    return reloader, pipeline, path


@pytest.mark.asyncio
async def test_reloader_merges_requests_during_reload(tmp_path, notify_socket):
    receiver, notifier = notify_socket
    reloader, pipeline, path = await start_held_reload(tmp_path, notifier, "[persona]\nmax_sentences = 3\n")

    path.write_text("[persona]\nmax_sentences = 4\n")
    reloader.request()
    reloader.request()
    pipeline.may_apply.set()
    await wait_until_done(reloader)

    assert [settings.persona.max_sentences for settings, _ in pipeline.applied] == [3, 4]
    assert received(receiver) == ["RELOADING=1", "READY=1", "RELOADING=1", "READY=1"]


@pytest.mark.asyncio
async def test_reloader_close_cancels_reload(tmp_path, notify_socket):
    receiver, notifier = notify_socket
    reloader, _, _ = await start_held_reload(tmp_path, notifier, "[persona]\nmax_sentences = 3\n")

    await asyncio.wait_for(reloader.close(), TIMEOUT_SECONDS)

    assert reloader._task.cancelled()
    # No READY=1 after a cancelled reload: the daemon is stopping.
    assert received(receiver) == ["RELOADING=1"]


@pytest.mark.models
@pytest.mark.asyncio
async def test_reloader_reloads_only_changed_voice(tmp_path, notify_socket):
    from assistant.tts import Synthesizer

    _, notifier = notify_socket
    reloader, path = make_reloader(tmp_path, notifier, "[tts]\nlength_scale = 1.0\n")
    old_voice = Synthesizer(reloader.settings.tts, path.parent)
    old_models = dataclasses.replace(placeholder_models(), tts=old_voice)
    pipeline = FakePipeline(old_models)
    reloader.attach(pipeline)

    path.write_text("[tts]\nlength_scale = 1.5\n")
    reloader.request()
    await asyncio.wait_for(reloader._task, 60)

    [(_, models)] = pipeline.applied
    assert models.tts is not old_voice
    assert isinstance(models.tts, Synthesizer)
    assert models.tts.settings.length_scale == 1.5
    for name in ("wake", "vad", "stt", "agent"):
        assert getattr(models, name) is getattr(old_models, name)
    [event] = read_events(tmp_path / "events.jsonl")
    assert event["models"] == ["tts"]
    # Slower speech: the same text lasts longer with the new voice settings.
    assert len(models.tts.synthesize_all("Hello there.")) > len(old_voice.synthesize_all("Hello there."))


# --- Pipeline.apply_settings ---------------------------------------------------------


class SilentVad:
    """Stand-in for SileroVad in the command recorder, which reports silence in every window."""

    def reset(self) -> None:
        pass

    def process(self, samples: np.ndarray) -> list[float]:
        return [0.0] * (len(samples) // 512)


class Holder:
    """Stand-in for a model that stores its settings in `settings`, and the agent's persona in `persona`."""

    settings = None
    persona = None


def fake_pipeline_models() -> Models:
    return Models(wake=Holder(), vad=SilentVad(), stt=Holder(), agent=Holder(), tts=Holder())


@pytest.mark.asyncio
async def test_apply_settings_waits_for_turn_end():
    old = Settings()
    new = changed(persona={"name": "Friday"}, listen={"pre_roll_seconds": 0.6}, wake={"threshold": 0.7})
    pipeline = Pipeline(old, fake_pipeline_models(), source=None, sink=None, events=EventLog())
    pipeline._set_state(State.THINKING)

    task = asyncio.create_task(pipeline.apply_settings(new))
    # Let the task run up to its wait.
    await asyncio.sleep(0)
    assert not task.done()
    assert pipeline.settings is old
    pipeline._set_state(State.IDLE)
    await asyncio.wait_for(task, TIMEOUT_SECONDS)

    assert pipeline.settings is new
    assert pipeline.models.agent.persona is new.persona
    assert pipeline.models.agent.settings is new.llm
    assert pipeline.models.wake.settings is new.wake
    assert pipeline.models.stt.settings is new.stt
    assert pipeline._recorder.settings is new.listen
    assert pipeline._recent_frames.maxlen == round(0.6 / FRAME_SECONDS)


@pytest.mark.asyncio
async def test_apply_settings_swaps_models():
    pipeline = Pipeline(Settings(), fake_pipeline_models(), source=None, sink=None, events=EventLog())
    models = dataclasses.replace(pipeline.models, tts=Holder(), wake=Holder())
    new = changed(wake={"models": ["alexa"]})

    await asyncio.wait_for(pipeline.apply_settings(new, models), TIMEOUT_SECONDS)

    assert pipeline.models is models
    assert pipeline.models.wake.settings is new.wake
    assert pipeline._wake_words == {"alexa"}
