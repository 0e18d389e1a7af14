"""Whisper transcribes in the configured language, and detects it only when configured to."""

from __future__ import annotations

import pytest

from assistant.config import SttSettings
from assistant.models import ModelError
from assistant.stt import Transcriber
from conftest import load_clip, run_assistant

pytestmark = pytest.mark.models

FRENCH_COMMAND = "stp_fr_minuteur_10_minutes.16k.wav"
FRENCH_READING = "fleurs_fr_003.16k.wav"


@pytest.fixture(scope="module")
def base_models():
    """Whisper base, multilingual, forced to French and left to detect the language."""
    return {
        language: Transcriber(SttSettings(model="base", language=language))
        for language in ("fr", "en", "auto")
    }


def test_configured_french_is_used(base_models):
    transcript = base_models["fr"].transcribe(load_clip(FRENCH_COMMAND))
    assert transcript.language == "fr"
    assert "minute" in transcript.text.lower()


def test_auto_detects_french(base_models):
    transcript = base_models["auto"].transcribe(load_clip(FRENCH_READING))
    assert transcript.language == "fr"
    # Whisper base mishears much of this reading; these two words come through.
    assert "ressemble" in transcript.text.lower()
    assert "phrase" in transcript.text.lower()


def test_configured_english_is_not_detected_away(base_models):
    # A short French command would be detected as French; "en" must be kept.
    transcript = base_models["en"].transcribe(load_clip(FRENCH_COMMAND))
    assert transcript.language == "en"


def test_english_only_model_reports_english(transcriber):
    transcript = transcriber.transcribe(load_clip(FRENCH_READING))
    assert transcript.language == "en"


def test_english_only_model_rejects_french_at_load():
    with pytest.raises(ModelError) as caught:
        Transcriber(SttSettings(model="tiny.en", language="fr"))
    message = str(caught.value)
    assert "understands English only but [stt] language is 'fr'" in message
    assert 'set [stt] model = "base"' in message


def test_unknown_language_code_rejected_at_load():
    with pytest.raises(ModelError) as caught:
        Transcriber(SttSettings(model="base", language="xx"))
    message = str(caught.value)
    assert "does not support [stt] language 'xx'" in message
    assert 'set it to "auto" or one of: ' in message
    assert ", en, " in message
    assert ", fr, " in message


def test_check_reports_english_only_model_with_french(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[stt]\nmodel = "tiny.en"\nlanguage = "fr"\n')

    process = run_assistant("check", "--config", str(config), timeout=120)

    assert process.returncode == 1
    assert "stt: FAILED" in process.stdout
    assert "understands English only but [stt] language is 'fr'" in process.stdout
    assert "Traceback" not in process.stderr
