"""Configuration: one settings model per stage, read from TOML and the environment."""

from __future__ import annotations

import contextvars
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "ASSISTANT_"
ENV_NESTED_DELIMITER = "__"
CONFIG_ENV_VAR = "ASSISTANT_CONFIG"

PACKAGED_CONFIG = Path(__file__).resolve().parent / "data" / "config.toml"

_current_toml_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "current_toml_file", default=None
)


class ConfigError(Exception):
    """A configuration file or variable that cannot be used; `problems` lists each one."""

    def __init__(self, path: Path | None, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        where = f"invalid configuration in {path}" if path else "invalid configuration"
        super().__init__(where + ":\n" + "\n".join(f"  - {p}" for p in problems))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ExampleExchange(_Section):
    """A question and the answer the persona would give, shown to the model before the conversation."""

    user: str = Field(min_length=1)
    assistant: str = Field(min_length=1)


class PersonaSettings(_Section):
    name: str = Field("Jarvis", min_length=1)
    language: str = Field("en", pattern=r"^[a-z]{2,3}$")
    max_sentences: int = Field(2, ge=1, le=20)
    system_prompt: str = (
        "You are {name}, a friendly voice assistant running offline on this computer. "
        "Today is {date}. "
        "Answer in {language}, in at most {max_sentences} short sentences of plain spoken text, "
        "without lists or formatting. If you do not know the answer, say so."
    )
    examples: list[ExampleExchange] = Field(
        default_factory=lambda: [
            ExampleExchange(user="What is the capital of Italy?", assistant="The capital of Italy is Rome."),
            ExampleExchange(user="How many legs does a spider have?", assistant="A spider has eight legs."),
            ExampleExchange(
                user="Who wrote Romeo and Juliet?", assistant="William Shakespeare wrote Romeo and Juliet."
            ),
        ]
    )

    @field_validator("system_prompt")
    @classmethod
    def _placeholders_known(cls, value: str) -> str:
        try:
            value.format(name="", date="", time="", language="", max_sentences=0)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"unknown or malformed placeholder {error}; allowed placeholders are "
                "{name}, {date}, {time}, {language}, {max_sentences} (write {{ and }} for braces)"
            ) from None
        return value


class WakeSettings(_Section):
    models: list[str] = Field(default_factory=lambda: ["hey_jarvis"], min_length=1)
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    refractory_seconds: float = Field(2.0, ge=0.0, le=60.0)
    barge_in_threshold: float = Field(0.8, gt=0.0, lt=1.0)


class ListenSettings(_Section):
    silence_seconds: float = Field(1.5, gt=0.0, le=10.0)
    pause_seconds: float = Field(0.25, gt=0.0, le=5.0)
    end_of_turn_probability: float = Field(0.1, ge=0.0, le=1.0)
    max_seconds: float = Field(15.0, gt=0.5, le=60.0)
    start_timeout_seconds: float = Field(4.0, gt=0.0, le=60.0)
    pre_roll_seconds: float = Field(0.3, ge=0.0, le=2.0)
    vad_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    follow_up_seconds: float = Field(3.0, ge=0.0, le=30.0)


class SttSettings(_Section):
    model: str = Field("tiny.en", min_length=1)
    language: str = Field("en", pattern=r"^([a-z]{2,3}|auto)$")
    beam_size: int = Field(1, ge=1, le=10)
    compute_type: str = Field("int8", pattern=r"^(int8|int8_float32|int16|float32|default)$")


class LlmSettings(_Section):
    model: str = Field("gemma-3-270m", min_length=1)
    chat_format: str = "auto"
    context_tokens: int = Field(2048, ge=256, le=131072)
    max_tokens: int = Field(80, ge=1, le=4096)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    top_k: int = Field(40, ge=0, le=1000)
    repeat_penalty: float = Field(1.1, ge=0.5, le=2.0)
    seed: int = Field(42, ge=-1)
    threads: int = Field(0, ge=0, le=256)
    stop: list[str] = Field(default_factory=lambda: ["\n"])
    stream: bool = True
    timeout_seconds: float = Field(30.0, gt=0.0, le=600.0)
    # A conversation idle this long starts anew; 0 makes every request a new one.
    conversation_idle_seconds: float = Field(300.0, ge=0.0, le=86400.0)
    tools: Literal["off", "local", "grammar"] = "local"

    @field_validator("chat_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        from assistant.chat_format import FORMAT_NAMES

        if value != "auto" and value not in FORMAT_NAMES:
            raise ValueError(f"expected 'auto' or one of {', '.join(FORMAT_NAMES)}")
        return value


class TtsSettings(_Section):
    voice: str = Field("en_US-joe-medium", min_length=1)
    length_scale: float = Field(1.0, gt=0.1, le=5.0)
    speaker_id: int = Field(0, ge=0)


class AudioSettings(_Section):
    input_device: str | int = ""
    output_device: str | int = ""
    # 0 picks the rate automatically.
    input_rate_hz: int = Field(0, ge=0, le=384_000)
    output_rate_hz: int = Field(0, ge=0, le=384_000)
    earcons: bool = True
    wake_sound: str = ""
    done_sound: str = ""
    error_sound: str = ""

    @field_validator("input_device", "output_device", mode="before")
    @classmethod
    def _device_name_or_index(cls, value: Any) -> Any:
        # Checked before the str | int union, which would report one error per member.
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError('expected a device name (string), an index (integer) or "" for the default')
        return value


class DaemonSettings(_Section):
    max_consecutive_failures: int = Field(3, ge=1, le=100)


class Settings(BaseSettings):
    """Root settings: one table per pipeline stage."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        validate_assignment=True,
    )

    persona: PersonaSettings = Field(default_factory=PersonaSettings)
    wake: WakeSettings = Field(default_factory=WakeSettings)
    listen: ListenSettings = Field(default_factory=ListenSettings)
    stt: SttSettings = Field(default_factory=SttSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    tts: TtsSettings = Field(default_factory=TtsSettings)
    audio: AudioSettings = Field(default_factory=AudioSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _current_toml_file.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def candidate_config_paths(explicit: str | Path | None = None) -> list[Path]:
    """List the configuration files in the order they are looked for."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit).expanduser())
    env_path = os.environ.get(CONFIG_ENV_VAR)
    if env_path:
        candidates.append(Path(env_path).expanduser())
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    candidates.append(config_home / "assistant" / "config.toml")
    candidates.append(Path("/etc/assistant/config.toml"))
    candidates.append(PACKAGED_CONFIG)
    return candidates


def find_config_file(explicit: str | Path | None = None) -> Path:
    """Return the configuration file to read; an explicit path must exist."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(path, [f"configuration file not found: {path}; check --config"])
        return path.resolve()

    env_path = os.environ.get(CONFIG_ENV_VAR)
    if env_path and not Path(env_path).expanduser().is_file():
        raise ConfigError(
            Path(env_path),
            [f"configuration file not found: {env_path}; fix or unset ${CONFIG_ENV_VAR}"],
        )

    for candidate in candidate_config_paths(None):
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(None, [f"no configuration file found; packaged default {PACKAGED_CONFIG} is missing"])


def load_settings(explicit: str | Path | None = None) -> tuple[Settings, Path]:
    """Load settings from the first configuration file found, with environment overrides.

    Raises ConfigError listing every problem, each with its key, value and what is allowed.
    """
    path = find_config_file(explicit)
    try:
        with path.open("rb") as file:
            tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(path, [f"not valid TOML: {error}"]) from error
    except OSError as error:
        raise ConfigError(path, [f"cannot read the file: {error.strerror}"]) from error

    token = _current_toml_file.set(path)
    try:
        return Settings(), path
    except ValidationError as error:
        raise ConfigError(path, describe_validation_error(error)) from error
    finally:
        _current_toml_file.reset(token)


def describe_validation_error(error: ValidationError) -> list[str]:
    """Turn a pydantic error into one line per problem: key, value, what is expected."""
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        message = item["msg"]
        if item["type"] == "extra_forbidden" and len(item["loc"]) == 1:
            tables = ", ".join(f"[{name}]" for name in Settings.model_fields)
            problems.append(f"[{key}]: unknown table; remove it or check its spelling (the tables are {tables})")
            continue
        if item["type"] == "extra_forbidden":
            problems.append(f"{key}: unknown key; remove it or check its spelling and table")
            continue
        if item["type"] == "missing":
            problems.append(f"{key}: required key missing; add it")
            continue
        if item["type"] == "model_type":
            message = "expected a table of keys"
        value = _short_repr(item.get("input"))
        env_name = ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(p).upper() for p in item["loc"])
        origin = f" (from ${env_name})" if env_name in os.environ else ""
        problems.append(f"{key} = {value}{origin}: {message}")
    return problems


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
