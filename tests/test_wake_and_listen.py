"""Wake word detection and command endpointing on real recordings."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.audio import SAMPLE_RATE_HZ, split_frames
from assistant.config import ListenSettings, WakeSettings
from assistant.listen import CommandRecorder, EndReason
from assistant.vad import SileroVad
from assistant.wake import WakeDetector
from conftest import load_clip, silence

ALL_MODELS = ["hey_jarvis", "alexa", "hey_mycroft", "okay_nabu"]


@pytest.fixture(scope="module")
def detector():
    detector = WakeDetector(WakeSettings(models=ALL_MODELS))
    yield detector
    detector.close()


def detections(detector, samples):
    detector.reset()
    found = []
    for frame in split_frames(samples):
        detection = detector.process(frame)
        if detection is not None:
            found.append(detection.model)
    return found


@pytest.mark.parametrize(
    ("clip", "model"),
    [
        ("wyoming_oww_hey_jarvis.16k.wav", "hey_jarvis"),
        ("wyoming_oww_hey_mycroft.16k.wav", "hey_mycroft"),
        ("wyoming_oww_okay_nabu.16k.wav", "okay_nabu"),
        ("picovoice_alexa_100.16k.wav", "alexa"),
        ("picovoice_alexa_101.16k.wav", "alexa"),
    ],
)
def test_clip_detected_once_by_its_model(detector, clip, model):
    assert detections(detector, np.concatenate([load_clip(clip), silence(1.0)])) == [model]


@pytest.mark.parametrize("clip", ["jfk.16k.wav", "stereo_diarization.left.16k.wav", "fleurs_fr_003.16k.wav"])
def test_speech_without_wake_word(detector, clip):
    assert detections(detector, load_clip(clip)) == []


def test_refractory_gives_one_detection_for_repeats():
    detector = WakeDetector(WakeSettings(models=["hey_jarvis"], refractory_seconds=5.0))
    clip = load_clip("wyoming_oww_hey_jarvis.16k.wav")
    assert detections(detector, np.concatenate([clip, clip, silence(1.0)])) == ["hey_jarvis"]


def test_repeat_after_refractory_detected_again():
    detector = WakeDetector(WakeSettings(models=["hey_jarvis"], refractory_seconds=1.0))
    clip = load_clip("wyoming_oww_hey_jarvis.16k.wav")
    assert detections(detector, np.concatenate([clip, silence(1.0), clip, silence(1.0)])) == ["hey_jarvis"] * 2


def test_detector_rejects_wrong_frame_size():
    detector = WakeDetector(WakeSettings())
    with pytest.raises(ValueError, match="frames of 1280 samples"):
        detector.process(np.zeros(100, dtype=np.int16))


def record(samples, settings=None, pre_roll=None):
    recorder = CommandRecorder(settings or ListenSettings(), SileroVad())
    recorder.start(pre_roll)
    for frame in split_frames(samples):
        command = recorder.feed(frame)
        if command is not None:
            return command
    return recorder.finish()


def test_command_ends_on_silence():
    sentence = load_clip("stereo_diarization.left.16k.wav")
    command = record(np.concatenate([silence(0.3), sentence, silence(2.0)]))
    assert command.reason is EndReason.SILENCE
    # The sentence's last word ends about 0.3 + 4.9 s after recording starts.
    assert 4.8 < command.speech_end_seconds < 5.5
    assert len(command.samples) / SAMPLE_RATE_HZ > 4.0


def test_silence_after_wake_gives_no_speech():
    command = record(silence(6.0), ListenSettings(start_timeout_seconds=2.0))
    assert command.reason is EndReason.NO_SPEECH
    assert len(command.samples) == 0


def test_long_speech_cut_at_max_seconds():
    speech = np.concatenate([load_clip("jfk.16k.wav")] * 2)
    command = record(speech, ListenSettings(max_seconds=3.0, silence_seconds=2.0))
    assert command.reason is EndReason.MAX_LENGTH


def test_input_ending_mid_speech():
    command = record(load_clip("stereo_diarization.left.16k.wav")[: 2 * SAMPLE_RATE_HZ])
    assert command.reason is EndReason.INPUT_ENDED
    assert command.has_speech


def test_pre_roll_speech_does_not_start_command():
    wake = load_clip("wyoming_oww_hey_jarvis.16k.wav")
    command = record(silence(5.0), ListenSettings(start_timeout_seconds=2.0), pre_roll=wake)
    assert command.reason is EndReason.NO_SPEECH


def test_audio_before_the_wake_point_left_out():
    sentence = load_clip("stereo_diarization.left.16k.wav")
    split = int(0.9 * SAMPLE_RATE_HZ)  # speech begins about 0.3 s into the clip
    command = record(np.concatenate([sentence[split:], silence(2.0)]), pre_roll=sentence[:split])
    assert command.has_speech
    # The wake word's tail must not reach speech recognition.
    assert len(command.samples) <= len(sentence) - split + 2 * SAMPLE_RATE_HZ


def test_pre_roll_keeps_the_first_syllable():
    sentence = load_clip("stereo_diarization.left.16k.wav")
    command = record(np.concatenate([silence(1.0), sentence, silence(2.0)]))
    # Speech starts about 0.3 s into the clip; the command reaches 0.3 s further back,
    # so it opens with quiet audio before the first word.
    opening = command.samples[: int(0.2 * SAMPLE_RATE_HZ)].astype(np.float64)
    whole = command.samples.astype(np.float64)
    assert np.sqrt(np.mean(opening**2)) < 0.3 * np.sqrt(np.mean(whole**2))
    assert len(command.samples) > len(sentence) - int(0.1 * SAMPLE_RATE_HZ)
