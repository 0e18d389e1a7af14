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


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param('[wake]\nmodels = ["hey_jarvis", 3]\n', "wake.models.1 = 3: Input should be a valid string",
                     id="wrong type inside a list"),
        pytest.param('[wake]\nmodels = "hey_jarvis"\n', "wake.models = 'hey_jarvis': Input should be a valid list",
                     id="string instead of a list"),
        pytest.param("[llm]\nseed = -2\n", "llm.seed = -2: Input should be greater than or equal to -1",
                     id="seed below -1"),
        pytest.param("[llm]\nmax_tokens = 1.5\n",
                     "llm.max_tokens = 1.5: Input should be a valid integer, got a number with a fractional part",
                     id="fraction for an integer"),
        pytest.param("[wake]\nmodels = []\n",
                     "wake.models = []: List should have at least 1 item after validation, not 0", id="empty list"),
        pytest.param("[llm]\ntemperature = 1979-05-27\n",
                     "llm.temperature = datetime.date(1979, 5, 27): Input should be a valid number", id="date"),
        pytest.param('[stt]\nlanguage = "english"\n',
                     "stt.language = 'english': String should match pattern '^([a-z]{2,3}|auto)$'",
                     id="language name instead of code"),
        pytest.param("wake = 3\n", "wake = 3: expected a table of keys", id="value instead of a table"),
        pytest.param('[persona]\nexamples = ["Hello"]\n', "persona.examples.0 = 'Hello': expected a table of keys",
                     id="string instead of an example table"),
        pytest.param('[persona]\nexamples = [{ user = "Hi" }]\n',
                     "persona.examples.0.assistant: required key missing; add it", id="example without its reply"),
        pytest.param('[persona]\nexamples = [{ user = "Hi", assistant = "Hello", tone = "warm" }]\n',
                     "persona.examples.0.tone: unknown key; remove it or check its spelling and table",
                     id="unknown key in an example"),
        pytest.param("[audio]\ninput_device = 1.5\n",
                     'audio.input_device = 1.5: Value error, expected a device name (string), an index (integer) '
                     'or "" for the default', id="fraction for a device"),
        pytest.param('[network]\nhost = "localhost"\n',
                     "[network]: unknown table; remove it or check its spelling (the tables are [persona], [wake], "
                     "[listen], [stt], [llm], [tts], [audio], [daemon])", id="unknown table"),
    ],
)
def test_invalid_value_message(tmp_path, text, problem):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path / "c.toml", text))
    assert caught.value.problems == [problem]


def test_device_name_or_index_accepted(tmp_path):
    settings, _ = load_settings(write(tmp_path / "c.toml", '[audio]\ninput_device = 2\noutput_device = "USB"\n'))
    assert settings.audio.input_device == 2
    assert settings.audio.output_device == "USB"


def test_problems_of_every_kind_listed_at_once(tmp_path):
    path = write(
        tmp_path / "c.toml",
        '[wake]\nthreshold = 2\nthreshhold = 0.5\n[llm]\nseed = -5\nmax_tokens = "many"\n[bogus]\nx = 1\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.problems == [
        "wake.threshold = 2: Input should be less than 1",
        "wake.threshhold: unknown key; remove it or check its spelling and table",
        "llm.max_tokens = 'many': Input should be a valid integer, unable to parse string as an integer",
        "llm.seed = -5: Input should be greater than or equal to -1",
        "[bogus]: unknown table; remove it or check its spelling (the tables are [persona], [wake], [listen], "
        "[stt], [llm], [tts], [audio], [daemon])",
    ]


def test_cli_check_lists_every_problem(tmp_path):
    path = write(tmp_path / "c.toml", '[wake]\nthreshold = 2\n[llm]\nseed = -5\n[bogus]\nx = 1\n')
    process = run_assistant("check", "--config", str(path), timeout=60)
    assert process.returncode == 2
    assert "wake.threshold = 2: Input should be less than 1" in process.stderr
    assert "llm.seed = -5: Input should be greater than or equal to -1" in process.stderr
    assert "[bogus]: unknown table" in process.stderr
    assert "Traceback" not in process.stderr


SUBCOMMANDS = {
    "run": ["run", "--input", "in.wav", "--output", "out.wav"],
    "ask": ["ask", "What time is it?"],
    "say": ["say", "Hello."],
    "transcribe": ["transcribe", "in.wav"],
    "check": ["check"],
    "devices": ["devices"],
}


@pytest.mark.parametrize("arguments", list(SUBCOMMANDS.values()), ids=list(SUBCOMMANDS))
def test_every_subcommand_exits_2_on_invalid_config(tmp_path, arguments):
    path = write(tmp_path / "c.toml", "[llm]\nseed = -2\n")
    arguments = [str(tmp_path / argument) if argument.endswith(".wav") else argument for argument in arguments]
    process = run_assistant(*arguments, "--config", str(path), timeout=60)
    assert process.returncode == 2
    assert f"invalid configuration in {path.resolve()}" in process.stderr
    assert "llm.seed = -2: Input should be greater than or equal to -1" in process.stderr
    assert "Traceback" not in process.stderr


def test_cli_missing_config_from_environment_exits_2(tmp_path):
    process = run_assistant("check", env={"ASSISTANT_CONFIG": str(tmp_path / "nope.toml")}, timeout=60)
    assert process.returncode == 2
    assert f"configuration file not found: {tmp_path / 'nope.toml'}; fix or unset $ASSISTANT_CONFIG" in process.stderr
    assert "Traceback" not in process.stderr
