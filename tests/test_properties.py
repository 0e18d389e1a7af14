"""Property-based tests: the configuration loader, the text normalizer and the audio file reader
never fail with anything but their own clear errors."""

from __future__ import annotations

import datetime
import json
import math
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from assistant.audio import SAMPLE_RATE_HZ, AudioFileError, read_audio_file
from assistant.config import ConfigError, Settings, load_settings
from assistant.speakable import SentenceBuffer, split_sentences, to_speakable

# --- configuration loader ------------------------------------------------------------------

SCHEMA = {
    table: list(field.annotation.model_fields)
    for table, field in Settings.model_fields.items()
}
DEFAULTS = Settings().model_dump()


def toml_string(text: str) -> str:
    # JSON escapes are valid TOML escapes; TOML also wants DEL escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: object) -> str:
    """Write one value in TOML syntax."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_string(key)} = {toml_value(item)}" for key, item in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def toml_document(tables: dict[str, object]) -> str:
    """Write tables (dicts) as [table] sections and other top-level values as keys, keys first."""
    lines = [
        f"{toml_string(name)} = {toml_value(value)}" for name, value in tables.items() if not isinstance(value, dict)
    ]
    for name, table in tables.items():
        if isinstance(table, dict):
            lines.append(f"[{toml_string(name)}]")
            lines += [f"{toml_string(key)} = {toml_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=30),
    # Text shaped like the prompt's placeholders, to reach the template check.
    st.lists(st.sampled_from(["{", "}", "{name}", "{date}", "{0}", "{name!r}", "{time:>5}", "{x}", "a", " "]),
             max_size=8).map("".join),
    st.sampled_from(["tiny.en", "base", "hey_jarvis", "auto", "fr", "en", "gemma", "int8", ""]),
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(names, inner, max_size=3)),
    max_leaves=8,
)


def one_in(count: int) -> st.SearchStrategy[bool]:
    """Draw True about once in `count` draws (integers would favor their bounds)."""
    return st.sampled_from([False] * (count - 1) + [True])


@st.composite
def config_tables(draw) -> dict[str, object]:
    """Draw a document from the real tables and keys, with values of any type and a few unknown names.

    Most keys get their default value and few names are unknown, so that some documents are valid.
    """
    tables: dict[str, object] = {}
    for table, keys in SCHEMA.items():
        choice = draw(st.sampled_from(["absent", "absent", "table", "table", "table", "table", "table", "value"]))
        if choice == "value":
            tables[table] = draw(scalars)
        elif choice == "table":
            chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)))
            extra = [draw(names.filter(lambda name: name not in keys))] if draw(one_in(6)) else []
            tables[table] = {
                key: draw(values) if key in extra or draw(one_in(4)) else DEFAULTS[table][key]
                for key in [*chosen, *extra]
            }
    if draw(one_in(6)):
        tables[draw(names.filter(lambda name: name not in SCHEMA))] = draw(st.dictionaries(names, scalars, max_size=2))
    return tables


def problem_key(problem: str) -> list[str]:
    """Return the dotted key a problem line starts with, as parts: '[x]: ...' and 'a.b = ...: ...'."""
    if problem.startswith("["):
        return [problem[1:problem.index("]")]]
    head = problem.split(" = ", 1)[0].split(": ", 1)[0]
    return head.split(".")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config_tables())
def test_config_loader_gives_settings_or_config_error(tables):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.toml"
        path.write_text(toml_document(tables), encoding="utf-8")
        try:
            result, _ = load_settings(path)
        except ConfigError as error:
            assert error.problems
            for problem in error.problems:
                assert not problem.startswith("not valid TOML"), problem
                parts = problem_key(problem)
                assert parts[0] in tables, problem
                if len(parts) > 1 and isinstance(tables[parts[0]], dict):
                    assert parts[1] in tables[parts[0]], problem
        else:
            assert isinstance(result, Settings)


# --- text normalizer and sentence splitter ---------------------------------------------------

# Emoji (with skin tones, joiners and flags), right-to-left scripts, combining
# marks, full-width punctuation, and the marks the splitter reacts to.
unusual_characters = st.one_of(
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
    st.sampled_from(["\u200d", "\ufe0f", "\U0001F3FB", "\U0001F1EB\U0001F1F7", "\u200f", "\u202e", "\u2066"]),
    st.characters(min_codepoint=0x0590, max_codepoint=0x06FF),
    st.characters(min_codepoint=0x0300, max_codepoint=0x036F),
    st.characters(min_codepoint=0x3000, max_codepoint=0x303F),
    st.sampled_from(list("aZé .,!?…:;-*_#`[]()<>|\n\t0123456789$€%。！？\"'") + ["Dr.", "3.5", "1. "]),
)
unusual_text = st.lists(unusual_characters, max_size=60).map("".join)
any_text = st.one_of(st.text(max_size=200), unusual_text)


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_to_speakable_never_raises_on_unusual_unicode(text):
    for language in ("en", "fr"):
        result = to_speakable(text, language)
        assert isinstance(result, str)
        assert result == result.strip()


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_split_sentences_loses_no_character(text):
    sentences = split_sentences(text)
    assert "".join("".join(sentence.split()) for sentence in sentences) == "".join(text.split())
    assert all(sentence and sentence == sentence.strip() for sentence in sentences)


@settings(max_examples=300, deadline=None)
@given(any_text, st.lists(st.integers(0, 200), max_size=12))
def test_sentence_buffer_streams_unusual_unicode_like_split(text, cuts):
    bounds = sorted({min(cut, len(text)) for cut in cuts})
    pieces = [text[start:end] for start, end in zip([0, *bounds], [*bounds, len(text)])]
    buffer = SentenceBuffer()
    sentences = [sentence for piece in pieces for sentence in buffer.feed(piece)]
    rest = buffer.flush()
    if rest is not None:
        sentences.append(rest)
    assert sentences == split_sentences(text)


# --- audio file reader ----------------------------------------------------------------------

# (container, subtype, rates or None for any rate from 8 to 48 kHz).
AUDIO_ENCODINGS = [
    ("WAV", "PCM_U8", None), ("WAV", "PCM_16", None), ("WAV", "PCM_24", None), ("WAV", "PCM_32", None),
    ("WAV", "FLOAT", None), ("WAV", "DOUBLE", None),
    ("FLAC", "PCM_S8", None), ("FLAC", "PCM_16", None), ("FLAC", "PCM_24", None),
    ("OGG", "VORBIS", None), ("OGG", "OPUS", [8_000, 12_000, 16_000, 24_000, 48_000]),
]


@st.composite
def audio_files(draw) -> tuple[str, str, int, np.ndarray]:
    container, subtype, rates = draw(st.sampled_from(AUDIO_ENCODINGS))
    rate = draw(st.sampled_from(rates)) if rates else draw(st.integers(8_000, 48_000))
    channels = draw(st.integers(1, 2))
    frames = draw(st.integers(1, 4_000))
    samples = draw(hnp.arrays(
        np.float32, (frames, channels),
        elements=st.floats(-1.0, 1.0, width=32),
        fill=st.floats(-1.0, 1.0, width=32),
    ))
    return container, subtype, rate, samples


@settings(max_examples=150, deadline=None)
@given(audio_files())
def test_audio_reader_output_format_and_length(encoded):
    container, subtype, rate, samples = encoded
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"clip.{container.lower()}"
        soundfile.write(path, samples, rate, format=container, subtype=subtype)
        stored_frames = soundfile.info(path).frames
        # Lossy codecs may store a few frames more or fewer than written. A file
        # that contains none must be rejected, which another test checks.
        assume(stored_frames > 0)

        converted = read_audio_file(path)

    assert converted.dtype == np.int16
    assert converted.ndim == 1
    assert abs(len(converted) - stored_frames * SAMPLE_RATE_HZ / rate) <= 1


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([b"RIFF", b"fLaC", b"OggS"]), st.binary(max_size=2_000))
def test_random_bytes_after_magic_rejected(magic, body):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.bin"
        path.write_bytes(magic + body)
        with pytest.raises(AudioFileError):
            read_audio_file(path)


@st.composite
def wav_headers_with_random_fields(draw) -> bytes:
    """A RIFF/WAVE header whose format fields and data are random, and whose sizes may lie."""
    format_tag = draw(st.sampled_from([1, 3, 6, 7, 0xFFFE, draw(st.integers(0, 0xFFFF))]))
    channels = draw(st.sampled_from([1, 2, 1, 2, 6, 0]))
    rate = draw(st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 8_000, 44_100, 4_000_000])))
    bits = draw(st.sampled_from([0, 8, 16, 24, 32, 64, draw(st.integers(0, 0xFFFF))]))
    block_align = max(1, channels * bits // 8) % 0x10000
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, (rate * block_align) % 2**32, block_align, bits)
    data = draw(st.binary(max_size=4_000))
    data_size = draw(st.sampled_from([len(data), 0xFFFFFFFF, draw(st.integers(0, 2**32 - 1))]))
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data_size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@settings(max_examples=150, deadline=None)
@given(wav_headers_with_random_fields())
def test_wav_random_header_fields_handled(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.wav"
        path.write_bytes(content)
        try:
            converted = read_audio_file(path)
        except AudioFileError:
            return
    assert converted.dtype == np.int16
    assert converted.ndim == 1
