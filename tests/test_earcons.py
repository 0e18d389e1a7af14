"""Earcons: the built-in tones, custom sound files, and turning them off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from assistant.audio import AudioFileError
from assistant.config import AudioSettings
from assistant.earcons import AMPLITUDE, EARCON_NAMES, TONES, Earcons, load_earcons, tone_sequence

RATE_HZ = 22_050


@pytest.mark.parametrize("name", EARCON_NAMES)
def test_built_in_tone_shape(name):
    samples, rate = Earcons(AudioSettings(), Path("."), RATE_HZ).sound(name)
    duration = sum(seconds for _, seconds in TONES[name])
    assert rate == RATE_HZ
    assert samples.dtype == np.int16
    assert 0.1 < len(samples) / RATE_HZ < duration + 0.1
    assert np.abs(samples).max() == pytest.approx(AMPLITUDE * 32767, rel=0.01)
    # Faded in and out, so that it starts and ends without a click.
    assert np.abs(samples[:5]).max() < 0.01 * 32767
    assert np.abs(samples[-5:]).max() < 0.01 * 32767


def test_built_in_tones_differ():
    wake = tone_sequence(TONES["wake"], RATE_HZ)
    done = tone_sequence(TONES["done"], RATE_HZ)
    assert not np.array_equal(wake, done)


def test_unknown_name_has_no_sound():
    assert Earcons(AudioSettings(), Path("."), RATE_HZ).sound("unknown") is None


def test_disabled_earcons_load_as_none():
    assert load_earcons(AudioSettings(earcons=False), Path("."), RATE_HZ) is None


def test_custom_file_is_resampled_and_downmixed(tmp_path):
    t = np.arange(44_100 // 4) / 44_100
    left = 0.5 * np.sin(2 * np.pi * 1000 * t)
    soundfile.write(tmp_path / "ding.wav", np.stack([left, left], axis=1), 44_100, subtype="PCM_16")
    earcons = Earcons(AudioSettings(wake_sound="ding.wav"), tmp_path, RATE_HZ)

    samples, rate = earcons.sound("wake")
    assert rate == RATE_HZ
    assert samples.ndim == 1
    assert len(samples) == pytest.approx(RATE_HZ / 4, abs=2)
    assert np.abs(samples).max() == pytest.approx(0.5 * 32767, rel=0.02)
    assert np.array_equal(earcons.sound("done")[0], tone_sequence(TONES["done"], RATE_HZ))


def test_missing_custom_file_is_rejected(tmp_path):
    with pytest.raises(AudioFileError, match=r"earcon file not found: .*absent.wav; fix or empty \[audio\] error_sound"):
        Earcons(AudioSettings(error_sound="absent.wav"), tmp_path, RATE_HZ)
