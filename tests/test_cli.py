"""The one-shot subcommands on the embedded models: ask, say, transcribe, check."""

from __future__ import annotations

import re
import wave

import pytest
import soundfile

from conftest import PROJECT_DIR, audio_path, run_assistant, transcribe_speech

pytestmark = pytest.mark.models

CONFIG = str(PROJECT_DIR / "config.toml")


def transcribe_wav(path, transcriber) -> str:
    samples, rate = soundfile.read(path, dtype="int16")
    return transcribe_speech(transcriber, samples, rate)


def test_say_writes_speech(tmp_path, transcriber):
    output = tmp_path / "say.wav"
    process = run_assistant("say", "--config", CONFIG, "The kitchen light is on.", "--output", str(output))
    assert process.returncode == 0, process.stderr
    with wave.open(str(output)) as wav:
        assert wav.getframerate() == 22_050
        assert wav.getnframes() > 22_050 // 2
    # tiny.en sometimes hears "light is" as "might as"; the first noun is reliable.
    assert "kitchen" in transcribe_wav(output, transcriber)


def test_ask_prints_reply_and_writes_speech(tmp_path):
    output = tmp_path / "ask.wav"
    process = run_assistant("ask", "--config", CONFIG, "What is the capital of France?", "--output", str(output))
    assert process.returncode == 0, process.stderr
    reply = process.stdout.strip()
    assert reply
    assert "<end_of_turn>" not in reply
    with wave.open(str(output)) as wav:
        assert wav.getnframes() > 0


def test_ask_reply_capped_at_persona_sentences(tmp_path):
    config = tmp_path / "one.toml"
    config.write_text("[persona]\nmax_sentences = 1\n[llm]\nmax_tokens = 200\n")
    process = run_assistant(
        "ask", "--config", str(config), "Tell me a long story about a dragon.", "--output", str(tmp_path / "a.wav")
    )
    assert process.returncode == 0, process.stderr
    reply = process.stdout.strip()
    # One sentence: at most one end mark, and only at the very end.
    assert len(re.findall(r"[.!?](\s|$)", reply)) <= 1, reply


def test_transcribe_flac():
    process = run_assistant("transcribe", "--config", CONFIG, str(audio_path("jfk.flac")))
    assert process.returncode == 0, process.stderr
    text = process.stdout.lower()
    assert text.startswith("and so my fellow americans")
    assert "ask not what your country can do for you" in text


def test_transcribe_missing_file(tmp_path):
    process = run_assistant("transcribe", "--config", CONFIG, str(tmp_path / "nope.wav"))
    assert process.returncode == 1
    assert "audio file not found" in process.stderr
    assert "Traceback" not in process.stderr


def test_check_reports_every_model():
    process = run_assistant("check", "--config", CONFIG)
    assert process.returncode == 0, process.stdout + process.stderr
    out = process.stdout
    assert "hey_jarvis.tflite" in out
    assert "model.bin" in out
    assert "gemma-3-270m-q4_k_m.gguf" in out
    assert "chat format gemma" in out
    assert "en_US-joe-medium.onnx" in out
    assert "sample rate 22050 Hz" in out


def test_check_reports_missing_model_and_fails(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(f'[llm]\nmodel = "{tmp_path / "missing.gguf"}"\n[tts]\nvoice = "nobody"\n')
    process = run_assistant("check", "--config", str(config))
    assert process.returncode == 1
    assert "missing.gguf" in process.stdout
    assert "Piper voice 'nobody' not found" in process.stdout
    # The other stages are still checked and reported.
    assert "hey_jarvis.tflite" in process.stdout
