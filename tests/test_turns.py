"""Turn-taking on real recordings: end of turn, streaming, barge-in and follow-up questions."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import PROJECT_DIR, events_named, load_clip, read_events, run_assistant, silence, write_wav

pytestmark = pytest.mark.models

WAKE = "wyoming_oww_hey_jarvis.16k.wav"
LEFT = "stereo_diarization.left.16k.wav"  # "He began a confused complaint against the wizard, ..."
RIGHT = "stereo_diarization.right.16k.wav"  # "The horizon seems extremely distant."


def run(tmp_path: Path, input_path: Path, *extra: str, config: str | None = None) -> list[dict]:
    events = tmp_path / "events.jsonl"
    process = run_assistant(
        "run", "--config", config or str(PROJECT_DIR / "config.toml"), "--input", str(input_path),
        "--output", str(tmp_path / "out.wav"), "--events", str(events), *extra,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    return read_events(events)


def names(events: list[dict]) -> list[str]:
    return [event["event"] for event in events]


def test_pauses_inside_a_sentence_keep_one_question(tmp_path):
    # The speaker pauses about 1.1 s after "my fellow Americans" and after "ask not".
    input_path = write_wav(tmp_path / "in.wav", load_clip(WAKE), silence(0.3), load_clip("jfk.16k.wav"), silence(2.0))
    events = run(tmp_path, input_path)
    first = events_named(events, "transcript")[0]["text"].lower()
    assert first.startswith("and so my fellow americans")
    assert "ask not what your country can do for you" in first
    assert first.rstrip(".!? ").endswith("can do for your country")


def test_finished_sentence_ends_before_long_silence(tmp_path):
    input_path = write_wav(tmp_path / "in.wav", load_clip(WAKE), silence(0.3), load_clip(RIGHT), silence(3.0))
    events = run(tmp_path, input_path)
    speech_end = events_named(events, "speech_end")[0]
    assert speech_end["reason"] == "end_of_turn"
    # Decided after a short pause, well before the 1.5 s silence timeout.
    assert speech_end["decided_audio_time"] - speech_end["audio_time"] < 1.0


def test_one_wake_when_speech_follows_at_once(tmp_path):
    input_path = write_wav(tmp_path / "in.wav", load_clip(WAKE), load_clip(LEFT), silence(2.0))
    events = run(tmp_path, input_path)
    assert len(events_named(events, "wake")) == 1


def test_command_in_the_same_breath_as_the_wake_word(tmp_path):
    wake = load_clip(WAKE)[: int(1.3 * 16_000)]  # the wake phrase ends about 1.25 s in
    command = load_clip(LEFT)[int(0.28 * 16_000):]  # speech starts about 0.3 s in
    input_path = write_wav(tmp_path / "in.wav", wake, command, silence(2.0))
    events = run(tmp_path, input_path)
    assert len(events_named(events, "wake")) == 1
    assert "confused complaint against the wizard" in events_named(events, "transcript")[0]["text"].lower()


def test_first_audio_before_generation_ends(tmp_path):
    config = tmp_path / "config.toml"
    # Three-sentence examples, no line-break stop and greedy sampling make a reply of
    # several sentences from the small base model; no {date}, so it is the same every day.
    config.write_text(
        '[persona]\nmax_sentences = 3\nsystem_prompt = "You are {name}, a voice assistant."\nexamples = [\n'
        '  { user = "Tell me about Rome.", assistant = "Rome is the capital of Italy. It is very old. Many tourists visit it." },\n'
        '  { user = "Tell me about cats.", assistant = "Cats are small pets. They like to sleep. Many people love them." },\n'
        "]\n[llm]\nstop = []\ntemperature = 0.0\nmax_tokens = 120\n"
    )
    input_path = write_wav(tmp_path / "in.wav", load_clip(WAKE), silence(0.3), load_clip(LEFT), silence(2.0))
    events = run(tmp_path, input_path, config=str(config))
    order = names(events)
    assert len(events_named(events, "sentence")) >= 2
    assert order.index("audio_start") < order.index("reply_end")


def test_wake_word_during_reply_interrupts_it(tmp_path):
    input_path = write_wav(
        tmp_path / "in.wav",
        load_clip(WAKE), silence(0.3), load_clip(LEFT), silence(1.0),
        load_clip(WAKE), silence(0.3), load_clip(RIGHT), silence(3.0),
    )
    events = run(tmp_path, input_path, "--realtime")
    wakes = events_named(events, "wake")
    assert len(wakes) == 2
    assert wakes[1].get("barge_in") is True
    assert "interrupted" in names(events)
    transcripts = [event["text"].lower() for event in events_named(events, "transcript")]
    assert "the horizon seems extremely distant" in transcripts[-1]
    assert len(events_named(events, "reply")) >= 1


def test_follow_up_without_wake_word_is_answered(tmp_path):
    input_path = write_wav(
        tmp_path / "in.wav", load_clip(WAKE), silence(0.3), load_clip(LEFT), silence(1.0), load_clip(RIGHT), silence(2.0)
    )
    events = run(tmp_path, input_path)
    assert len(events_named(events, "wake")) == 1
    transcripts = [event["text"].lower() for event in events_named(events, "transcript")]
    assert len(transcripts) == 2
    assert "the horizon seems extremely distant" in transcripts[1]
    assert len(events_named(events, "reply")) == 2


def test_question_after_follow_up_window_is_ignored(tmp_path):
    input_path = write_wav(
        tmp_path / "in.wav", load_clip(WAKE), silence(0.3), load_clip(LEFT), silence(5.0), load_clip(RIGHT), silence(2.0)
    )
    events = run(tmp_path, input_path)
    assert len(events_named(events, "transcript")) == 1
    assert len(events_named(events, "reply")) == 1
