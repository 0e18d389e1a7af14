"""Model names and paths resolve to local files, with messages that name the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assistant import models
from assistant.models import ModelError
from conftest import load_clip, run_assistant, write_wav


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


# --- faulty model files through the command line -----------------------------------

SITE_PACKAGES_MODELS = Path(models.package_data_dir("pyopen_wakeword", "models"))


def make_truncated_gguf(folder: Path) -> Path:
    path = folder / "truncated.gguf"
    with models.resolve_gguf("gemma-3-270m").open("rb") as source:
        path.write_bytes(source.read(1 << 20))
    return path


def make_text_gguf(folder: Path) -> Path:
    path = folder / "notes.gguf"
    path.write_text("this is not a model\n")
    return path


def make_lonely_voice(folder: Path) -> Path:
    path = folder / "lonely.onnx"
    path.write_bytes(b"onnx")
    return path


def make_corrupt_voice(folder: Path) -> Path:
    embedded = models.resolve_voice("en_US-joe-medium")
    path = folder / "corrupt.onnx"
    path.write_bytes(embedded.model.read_bytes()[:50_000])
    shutil.copyfile(embedded.config, folder / "corrupt.onnx.json")
    return path


def make_whisper_without_model_bin(folder: Path) -> Path:
    path = folder / "whisper"
    path.mkdir()
    (path / "config.json").write_text("{}")
    return path


def make_truncated_whisper(folder: Path) -> Path:
    embedded = models.resolve_whisper("tiny.en")
    path = folder / "whisper"
    shutil.copytree(embedded, path, ignore=shutil.ignore_patterns("model.bin"))
    with (embedded / "model.bin").open("rb") as source:
        (path / "model.bin").write_bytes(source.read(3_000_000))
    return path


def make_corrupt_tflite(folder: Path) -> Path:
    path = folder / "hey_computer.tflite"
    path.write_bytes((SITE_PACKAGES_MODELS / "hey_jarvis.tflite").read_bytes()[:100_000])
    return path


# Each case: the [table] key, a function that makes the faulty file (or returns a
# path that does not exist), and what the message must contain besides the path.
MODEL_FAULTS = {
    "missing GGUF": ("llm", "model", lambda folder: folder / "nope.gguf",
                     ["language model not found", "set [llm] model to 'gemma-3-270m' or the path of a .gguf file"]),
    "text file as GGUF": ("llm", "model", make_text_gguf,
                          ["is not a GGUF file", "convert the model to GGUF"]),
    "truncated GGUF": ("llm", "model", make_truncated_gguf,
                       ["cannot load language model", "may be truncated or corrupt", "download it again"]),
    "voice without .onnx.json": ("tts", "voice", make_lonely_voice,
                                 ["has no lonely.onnx.json beside it", "download the voice's .onnx.json file"]),
    "corrupt voice": ("tts", "voice", make_corrupt_voice,
                      ["cannot load Piper voice", "may be truncated or corrupt", "download both again"]),
    "Whisper folder without model.bin": ("stt", "model", make_whisper_without_model_bin,
                                         ["has no model.bin", "ct2-transformers-converter"]),
    "truncated Whisper model": ("stt", "model", make_truncated_whisper,
                                ["cannot load Whisper model", "may be truncated or corrupt",
                                 "convert or copy the model again"]),
    "wake model not .tflite": ("wake", "models", lambda folder: folder / "hey_computer.onnx",
                               ["unknown wake word model", "the path of a .tflite openWakeWord model"]),
    "missing wake model": ("wake", "models", lambda folder: folder / "nope.tflite",
                           ["wake word model not found", "check [wake] models"]),
    "corrupt wake model": ("wake", "models", make_corrupt_tflite,
                           ["is not a valid TensorFlow Lite model", "download it again"]),
    "wake model of another kind": ("wake", "models", lambda folder: SITE_PACKAGES_MODELS / "embedding_model.tflite",
                                   ["is not an openWakeWord classifier", "expected input (1, windows, 96)"]),
}


@pytest.fixture(params=list(MODEL_FAULTS.values()), ids=list(MODEL_FAULTS))
def model_fault(request, tmp_path) -> tuple[str, Path, Path, list[str]]:
    """Make one faulty model file; return its table, its path, a config naming it, and the expected texts."""
    table, key, make, expected = request.param
    path = make(tmp_path)
    value = f'["{path}"]' if key == "models" else f'"{path}"'
    config = tmp_path / "config.toml"
    config.write_text(f"[{table}]\n{key} = {value}\n")
    return table, path, config, expected


@pytest.mark.models
def test_check_names_faulty_model_and_fix(model_fault):
    table, path, config, expected = model_fault

    process = run_assistant("check", "--config", str(config), timeout=120)

    assert process.returncode == 1
    assert f"{table}: FAILED" in process.stdout
    problem = next(line for line in process.stdout.splitlines() if line.startswith(f"  - {table}: "))
    assert str(path) in problem
    for text in expected:
        assert text in problem
    assert "Traceback" not in process.stderr


@pytest.mark.models
def test_run_stops_on_faulty_model_with_its_fix(tmp_path, model_fault):
    _, path, config, expected = model_fault
    input_path = write_wav(tmp_path / "in.wav", load_clip("wyoming_oww_hey_jarvis.16k.wav"))

    process = run_assistant(
        "run", "--config", str(config), "--input", str(input_path), "--output", str(tmp_path / "out.wav"),
        timeout=120,
    )

    assert process.returncode == 1
    message = next(line for line in process.stderr.splitlines() if line.startswith("assistant: "))
    assert str(path) in message
    for text in expected:
        assert text in message
    assert "Traceback" not in process.stderr
