"""Model names and paths resolve to local files, with messages that name the fix."""

from __future__ import annotations

import pytest

from assistant import models
from assistant.models import ModelError


def test_embedded_tiny_en_resolves():
    path = models.resolve_whisper("tiny.en")
    assert (path / "model.bin").is_file()


def test_embedded_gguf_resolves_and_is_verified():
    path = models.resolve_gguf("gemma-3-270m")
    assert path.read_bytes()[:4] == b"GGUF"
    assert path.with_name(path.name + ".verified").is_file()


def test_embedded_voice_resolves():
    voice = models.resolve_voice("en_US-joe-medium")
    assert voice.model.is_file()
    assert voice.config.is_file()


def test_missing_gguf_path(tmp_path):
    with pytest.raises(ModelError, match=r"language model not found: .*nope\.gguf"):
        models.resolve_gguf(str(tmp_path / "nope.gguf"))


def test_text_file_given_as_gguf(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_text("this is not a model")
    with pytest.raises(ModelError, match="is not a GGUF file"):
        models.resolve_gguf(str(path))


def test_voice_without_json(tmp_path):
    (tmp_path / "lonely.onnx").write_bytes(b"onnx")
    with pytest.raises(ModelError, match=r"has no lonely\.onnx\.json beside it"):
        models.resolve_voice(str(tmp_path / "lonely.onnx"))


def test_voice_found_by_name_in_voices_folder(tmp_path, monkeypatch):
    (tmp_path / "my-voice.onnx").write_bytes(b"onnx")
    (tmp_path / "my-voice.onnx.json").write_text("{}")
    monkeypatch.setenv("ASSISTANT_VOICES_DIR", str(tmp_path))
    assert models.resolve_voice("my-voice").model == tmp_path / "my-voice.onnx"


def test_unknown_voice_name_lists_searched_folders(tmp_path):
    with pytest.raises(ModelError) as caught:
        models.resolve_voice("fr_FR-nobody-medium", config_dir=tmp_path)
    assert "fr_FR-nobody-medium.onnx" in str(caught.value)
    assert str(tmp_path / "voices") in str(caught.value)


def test_whisper_folder_without_model_bin(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="has no model.bin"):
        models.resolve_whisper(str(tmp_path))


def test_unknown_wake_model_name():
    with pytest.raises(ModelError, match="unknown wake word model 'hey_siri'"):
        models.resolve_wake_model("hey_siri")


def test_join_parts_rejects_wrong_checksum(tmp_path):
    part = tmp_path / "a.part"
    part.write_bytes(b"abc")
    with pytest.raises(ModelError, match="SHA-256"):
        models.join_parts([part], tmp_path / "joined.bin", expected_sha256="0" * 64)
    assert not (tmp_path / "joined.bin").exists()


def test_join_parts_once(tmp_path):
    parts = [tmp_path / "a.part", tmp_path / "b.part"]
    parts[0].write_bytes(b"abc")
    parts[1].write_bytes(b"def")
    target = tmp_path / "joined.bin"
    models.join_parts(parts, target, expected_sha256=None)
    assert target.read_bytes() == b"abcdef"
    modified = target.stat().st_mtime_ns
    models.join_parts(parts, target, expected_sha256=None)
    assert target.stat().st_mtime_ns == modified
