"""Numbers and durations as Whisper writes them: words in num2words' spelling, or digits."""

from __future__ import annotations

from fractions import Fraction

import pytest
from num2words import num2words

from assistant.spoken_numbers import normalize, parse_duration, parse_number

ROUND_TRIP_VALUES = [
    *range(0, 2200),
    9_999, 10_001, 21_021, 80_000, 81_000, 99_999, 100_000, 123_456, 200_000, 999_999,
    1_000_000, 1_000_001, 1_100_000, 2_000_003, 7_654_321, 1_000_000_000,
]


@pytest.mark.parametrize("language", ["en", "fr"])
def test_num2words_integers_parse_back(language):
    failures = []
    for value in ROUND_TRIP_VALUES:
        words = num2words(value, lang=language)
        tokens = normalize(words, language)
        parsed = parse_number(tokens, 0, language)
        if parsed is None or parsed.value != value or parsed.end != len(tokens):
            failures.append((value, words, parsed))
    assert failures == []


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("value", ["2.5", "2.25", "0.05", "13.75"])
def test_num2words_decimals_parse_back(language, value):
    words = num2words(float(value), lang=language)
    tokens = normalize(words, language)
    parsed = parse_number(tokens, 0, language)
    assert parsed is not None, words
    assert parsed.value == Fraction(value), words
    assert parsed.end == len(tokens), words


@pytest.mark.parametrize(
    ("text", "language", "tokens"),
    [
        ("Quelle heure est-il ?", "fr", ["quelle", "heure", "est", "il"]),
        ("What's 12×7?", "en", ["what", "s", "12", "×", "7"]),
        ("3-4", "en", ["3", "-", "4"]),
        ("-3 plus 4", "en", ["-", "3", "plus", "4"]),
        ("vingt-deux moins -3", "fr", ["vingt", "deux", "moins", "-", "3"]),
        ("1,000.5 seconds", "en", ["1000.5", "seconds"]),
        ("1 000,5 secondes", "fr", ["1000.5", "secondes"]),
        ("1.000 secondes", "fr", ["1000", "secondes"]),
        ("2,5 heures", "en", ["2.5", "heures"]),
        ("2.5 heures", "fr", ["2.5", "heures"]),
        ("Répète, s’il te plaît.", "fr", ["repete", "s", "il", "te", "plait"]),
    ],
)
def test_normalize_tokens(text, language, tokens):
    assert normalize(text, language) == tokens


@pytest.mark.parametrize(
    ("words", "language", "value", "end"),
    [
        ("five six", "en", 5, 1),
        ("twenty one", "en", 21, 2),
        ("three and four", "en", 3, 1),
        ("a hundred and five", "en", 105, 4),
        ("nineteen hundred", "en", 1900, 2),
        ("minus three", "en", -3, 2),
        ("2 million", "en", 2_000_000, 2),
        ("zero five", "en", 0, 1),
        ("soixante et onze", "fr", 71, 3),
        ("quatre vingts", "fr", 80, 2),
        ("quatre vingt dix sept", "fr", 97, 4),
        ("septante deux", "fr", 72, 2),
        ("moins 3", "fr", -3, 2),
        ("mille cent", "fr", 1100, 2),
    ],
)
def test_number_stops_where_the_number_ends(words, language, value, end):
    parsed = parse_number(words.split(), 0, language)
    assert parsed is not None
    assert parsed.value == value
    assert parsed.end == end


def test_billion_depends_on_language():
    assert parse_number(["un", "billion"], 0, "fr").value == 10**12
    assert parse_number(["one", "billion"], 0, "en").value == 10**9


@pytest.mark.parametrize("words", ["minutes", "le", "", "and five"])
def test_no_number(words):
    assert parse_number(words.split(), 0, "en") is None


@pytest.mark.parametrize(
    ("text", "language", "seconds"),
    [
        ("10 minutes", "fr", 600),
        ("cinq minutes", "fr", 300),
        ("une heure et demie", "fr", 5400),
        ("une heure trente", "fr", 5400),
        ("1 h 30", "fr", 5400),
        ("un quart d'heure", "fr", 900),
        ("trois quarts d'heure", "fr", 2700),
        ("une demi-heure", "fr", 1800),
        ("2,5 heures", "fr", 9000),
        ("vingt-et-une minutes", "fr", 1260),
        ("an hour and a half", "en", 5400),
        ("one and a half hours", "en", 5400),
        ("1 hour, 20 minutes and 5 seconds", "en", 4805),
        ("half an hour", "en", 1800),
        ("a minute", "en", 60),
        ("90 seconds", "en", 90),
        ("ten minutes and thirty seconds", "en", 630),
        ("1,000 seconds", "en", 1000),
        ("10 min", "en", 600),
    ],
)
def test_duration_table(text, language, seconds):
    tokens = normalize(text, language)
    duration = parse_duration(tokens, 0, language)
    assert duration is not None, tokens
    assert duration.seconds == seconds
    assert duration.end == len(tokens)


@pytest.mark.parametrize("text", ["minutes", "10", "minute minute", "the timer"])
def test_no_duration(text):
    assert parse_duration(normalize(text, "en"), 0, "en") is None


def test_duration_unit_counts_once():
    duration = parse_duration(normalize("10 minutes 5 minutes", "en"), 0, "en")
    assert duration is not None
    assert duration.seconds == 600
    assert duration.end == 2
