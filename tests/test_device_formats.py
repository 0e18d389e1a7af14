"""How the microphone and speaker pick a stream format, without a sound device.

The live side (PortAudio through a real PulseAudio server) is in
test_live_audio.py. Through PulseAudio every rate opens, so the fallback to
another rate is checked here against devices described by what they accept.
"""

from __future__ import annotations

import pytest

from assistant.devices import (
    RetryDelay,
    StreamFormat,
    candidate_rates,
    channel_counts,
    choose_format,
)


def only(rate_hz: int, channels: int):
    """A device that accepts a single rate and channel count, like a USB microphone opened as hw:X,Y."""
    return lambda rate, count: (rate, count) == (rate_hz, channels)


@pytest.mark.parametrize(
    ("accepts", "expected"),
    [
        (lambda rate, count: True, StreamFormat(16_000, 2)),
        (only(48_000, 2), StreamFormat(48_000, 2)),
        (only(44_100, 1), StreamFormat(44_100, 1)),
        (only(8_000, 1), StreamFormat(8_000, 1)),
    ],
)
def test_microphone_format_fallback(accepts, expected):
    rates = candidate_rates(16_000, 44_100)
    assert choose_format(rates, channel_counts(2, "input"), accepts) == expected


def test_speaker_prefers_voice_rate_and_mono():
    rates = candidate_rates(22_050, 48_000)
    assert choose_format(rates, channel_counts(32, "output"), lambda rate, count: True) == StreamFormat(22_050, 1)


def test_speaker_stereo_only_device():
    rates = candidate_rates(22_050, 48_000)
    assert choose_format(rates, channel_counts(2, "output"), only(48_000, 2)) == StreamFormat(48_000, 2)


def test_no_accepted_format_returns_none():
    assert choose_format(candidate_rates(16_000, 48_000), [1, 2], lambda rate, count: False) is None


def test_candidate_rates_order():
    assert candidate_rates(16_000, 48_000) == [16_000, 48_000, 44_100, 32_000, 22_050, 96_000, 8_000]


def test_forced_rate_is_the_only_candidate():
    assert candidate_rates(16_000, 44_100, forced_rate_hz=48_000) == [48_000]


@pytest.mark.parametrize(
    ("max_channels", "kind", "expected"),
    [
        (1, "input", [1]),
        (2, "input", [2, 1]),
        (4, "input", [2, 1, 4]),
        (32, "input", [2, 1, 32]),
        (1, "output", [1]),
        (2, "output", [1, 2]),
        (8, "output", [1, 2, 8]),
    ],
)
def test_channel_counts(max_channels, kind, expected):
    assert channel_counts(max_channels, kind) == expected


def test_retry_delay_doubles_to_maximum():
    delay = RetryDelay(0.5, 5.0)
    assert [delay.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    delay.reset()
    assert delay.next() == 0.5
