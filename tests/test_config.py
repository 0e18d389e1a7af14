"""Configuration: search order, environment overrides, and messages for invalid files."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from assistant.config import PACKAGED_CONFIG, ConfigError, Settings, load_settings
from conftest import PROJECT_DIR, run_assistant


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_packaged_default_is_the_project_config():
    assert PACKAGED_CONFIG.resolve() == (PROJECT_DIR / "config.toml").resolve()


def test_config_file_matches_model_defaults():
    with (PROJECT_DIR / "config.toml").open("rb") as file:
        from_file = Settings.model_validate(tomllib.load(file))
    assert from_file.model_dump() == Settings().model_dump()


def test_explicit_path_wins(tmp_path, monkeypatch):
    explicit = write(tmp_path / "explicit.toml", '[persona]\nname = "Explicit"\n')
    monkeypatch.setenv("ASSISTANT_CONFIG", str(write(tmp_path / "env.toml", '[persona]\nname = "Env"\n')))
    settings, path = load_settings(explicit)
    assert settings.persona.name == "Explicit"
    assert path == explicit.resolve()


def test_env_path_before_user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_CONFIG", str(write(tmp_path / "env.toml", '[persona]\nname = "Env"\n')))
    write(tmp_path / "xdg" / "assistant" / "config.toml", '[persona]\nname = "User"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    settings, _ = load_settings()
    assert settings.persona.name == "Env"


def test_user_config_before_packaged(tmp_path, monkeypatch):
    user = write(tmp_path / "xdg" / "assistant" / "config.toml", '[persona]\nname = "User"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    settings, path = load_settings()
    assert settings.persona.name == "User"
    assert path == user.resolve()


def test_packaged_default_used_last(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "empty"))
    if Path("/etc/assistant/config.toml").exists():
        pytest.skip("/etc/assistant/config.toml exists on this machine")
    settings, path = load_settings()
    assert path == PACKAGED_CONFIG.resolve()
    assert settings.wake.models == ["hey_jarvis"]


def test_missing_keys_take_defaults(tmp_path):
    settings, _ = load_settings(write(tmp_path / "c.toml", "[wake]\nthreshold = 0.7\n"))
    assert settings.wake.threshold == 0.7
    assert settings.wake.models == ["hey_jarvis"]
    assert settings.stt.model == "tiny.en"


def test_environment_overrides_file(tmp_path, monkeypatch):
    path = write(tmp_path / "c.toml", '[wake]\nthreshold = 0.7\nmodels = ["alexa"]\n')
    monkeypatch.setenv("ASSISTANT_WAKE__THRESHOLD", "0.35")
    settings, _ = load_settings(path)
    assert settings.wake.threshold == 0.35
    assert settings.wake.models == ["alexa"]


def test_missing_explicit_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "nope.toml")
    assert "configuration file not found" in str(caught.value)
    assert "nope.toml" in str(caught.value)


def test_invalid_toml_names_file_and_line(tmp_path):
    path = write(tmp_path / "broken.toml", "[wake]\nthreshold = = 0.5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert str(path.resolve()) in message
    assert "not valid TOML" in message
    assert "line 2" in message


def test_out_of_range_value_names_key_value_and_limit(tmp_path):
    path = write(tmp_path / "c.toml", "[wake]\nthreshold = 1.5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.problems == ["wake.threshold = 1.5: Input should be less than 1"]


def test_wrong_type_names_key(tmp_path):
    path = write(tmp_path / "c.toml", '[listen]\nsilence_seconds = "long"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.problems == ["listen.silence_seconds = 'long': Input should be a valid number, unable to parse string as a number"]


def test_unknown_key_rejected(tmp_path):
    path = write(tmp_path / "c.toml", "[wake]\nthreshhold = 0.5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.problems == ["wake.threshhold: unknown key; remove it or check its spelling and table"]


def test_every_problem_reported_at_once(tmp_path):
    path = write(tmp_path / "c.toml", "[wake]\nthreshold = 2\n[llm]\nmax_tokens = 0\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert len(caught.value.problems) == 2


def test_bad_environment_value_names_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_WAKE__THRESHOLD", "7")
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path / "c.toml", ""))
    assert "$ASSISTANT_WAKE__THRESHOLD" in caught.value.problems[0]


def test_unknown_prompt_placeholder(tmp_path):
    path = write(tmp_path / "c.toml", '[persona]\nsystem_prompt = "Hello {user}"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "persona.system_prompt" in caught.value.problems[0]
    assert "{name}" in caught.value.problems[0]


def test_unknown_chat_format(tmp_path):
    path = write(tmp_path / "c.toml", '[llm]\nchat_format = "alpaca"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "llm.chat_format" in caught.value.problems[0]
    assert "gemma" in caught.value.problems[0]


def test_cli_invalid_config_exits_2(tmp_path):
    path = write(tmp_path / "c.toml", "[wake]\nthreshold = 1.5\n")
    process = run_assistant("check", "--config", str(path), timeout=60)
    assert process.returncode == 2
    assert str(path.resolve()) in process.stderr
    assert "wake.threshold = 1.5" in process.stderr
    assert "Traceback" not in process.stderr
