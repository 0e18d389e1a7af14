"""Numbers and durations in transcripts, in English and French, written as words or digits.

Number words follow num2words' spelling ("one thousand, one hundred and one",
"quatre-vingt-dix-sept", "vingt et un", "deux virgule cinq"), with the usual
variants (hyphens or spaces, "a hundred", "septante", "nonante"). Digits follow the
language's conventions: "1,000.5" in English, "1 000,5" in French.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction

_UNIT_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "sept": 7, "huit": 8,
    "neuf": 9,
}
_TEEN_WORDS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "dix": 10, "onze": 11, "douze": 12, "treize": 13,
    "quatorze": 14, "quinze": 15, "seize": 16,
}
_TENS_WORDS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90, "vingt": 20, "vingts": 20, "trente": 30, "quarante": 40, "cinquante": 50, "soixante": 60,
    "septante": 70, "huitante": 80, "octante": 80, "nonante": 90,
}
_HUNDRED_WORDS = {"hundred", "cent", "cents"}
# "billion" is 10**9 in English and 10**12 in French.
_SCALE_WORDS = {
    "en": {"thousand": 10**3, "million": 10**6, "millions": 10**6, "billion": 10**9},
    "fr": {"mille": 10**3, "mil": 10**3, "million": 10**6, "millions": 10**6, "milliard": 10**9,
           "milliards": 10**9, "billion": 10**12, "billions": 10**12},
}
_AND_WORDS = {"and", "et"}
_DECIMAL_POINT_WORDS = {"point", "virgule"}
_NEGATIVE_WORDS = {"minus", "negative", "moins", "-"}

# Digits grouped by three as each language writes them: "1,000" in English, "1 000" or
# "1.000" in French. Any other "," or "." between digits is a decimal mark in both
# languages, so "2,5" and "2.5" are 2.5, and "1,000" is 1 in French.
_GROUPED_DIGITS_RE = {
    "en": re.compile(r"\d{1,3}(?:,\d{3})+(?!\d)"),
    "fr": re.compile(r"\d{1,3}(?:[ \u00a0\u202f.]\d{3})+(?!\d)"),
}
_DIGITS_RE = re.compile(r"\d+")
_DECIMALS_RE = re.compile(r"[.,](\d+)")
_CANONICAL_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")
_SYMBOLS = "+*/×÷=−-"


def normalize(text: str, language: str = "en") -> list[str]:
    """Split a transcript into lowercase words without accents, numbers and operator symbols.

    Numbers come out in one canonical form ("1000", "2.5") whatever the language's
    separators. Apostrophes and hyphens between letters split words ("l'heure" becomes
    "l", "heure"), and other punctuation is dropped.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(char for char in unicodedata.normalize("NFD", text) if not unicodedata.combining(char))
    grouped_re = _GROUPED_DIGITS_RE["fr" if language == "fr" else "en"]

    tokens: list[str] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char.isdigit():
            integer = grouped_re.match(text, position) or _DIGITS_RE.match(text, position)
            position = integer.end()
            canonical = str(int(re.sub(r"\D", "", integer.group())))
            decimals = _DECIMALS_RE.match(text, position)
            if decimals is not None:
                canonical += "." + decimals.group(1)
                position = decimals.end()
            tokens.append(canonical)
        elif char.isalpha():
            word = re.match(r"[^\W\d_]+", text[position:]).group()
            tokens.append(word)
            position += len(word)
        elif char in _SYMBOLS:
            tokens.append("-" if char == "−" else char)
            position += 1
        else:
            position += 1
    return _join_hyphens(text, tokens)


def _join_hyphens(text: str, tokens: list[str]) -> list[str]:
    # A hyphen joins words ("vingt-deux", "est-il"); it is a minus sign only next to a digit
    # or a space. Words came out as tokens already, so drop hyphens glued between letters.
    glued = len(re.findall(r"(?<=[^\W\d_])-(?=[^\W\d_])", text))
    if not glued:
        return tokens
    result: list[str] = []
    for index, token in enumerate(tokens):
        between_words = (
            token == "-"
            and glued > 0
            and 0 < index < len(tokens) - 1
            and tokens[index - 1].isalpha()
            and tokens[index + 1].isalpha()
        )
        if between_words:
            glued -= 1
            continue
        result.append(token)
    return result


def is_number_token(token: str) -> bool:
    return _CANONICAL_NUMBER_RE.fullmatch(token) is not None


@dataclass(frozen=True)
class ParsedNumber:
    value: Fraction
    #: Index of the first token after the number.
    end: int


def parse_number(tokens: list[str], start: int, language: str = "en") -> ParsedNumber | None:
    """Parse the number that begins at tokens[start], in words or digits; None if there is none.

    The longest valid number is taken: "twenty one" is 21, but "five six" is 5
    followed by another number. A leading "minus", "moins" or "-" makes it negative.
    """
    negative = start < len(tokens) and tokens[start] in _NEGATIVE_WORDS
    parsed = _parse_unsigned(tokens, start + 1 if negative else start, language)
    if parsed is None:
        return None
    return ParsedNumber(-parsed.value if negative else parsed.value, parsed.end)


def _parse_unsigned(tokens: list[str], start: int, language: str) -> ParsedNumber | None:
    if start >= len(tokens):
        return None
    scales = _SCALE_WORDS["fr" if language == "fr" else "en"]
    if is_number_token(tokens[start]):
        value = Fraction(tokens[start])
        end = start + 1
        if end < len(tokens) and tokens[end] in scales:
            value *= scales[tokens[end]]
            end += 1
        return ParsedNumber(value, end)

    integer = _parse_integer_words(tokens, start, scales)
    if integer is None:
        return None
    value, end = integer
    if end + 1 < len(tokens) and tokens[end] in _DECIMAL_POINT_WORDS:
        fraction = _parse_decimal_digits(tokens, end + 1, scales)
        if fraction is not None:
            digits, end = fraction
            value += Fraction(int(digits), 10 ** len(digits))
    return ParsedNumber(Fraction(value), end)


def _parse_decimal_digits(tokens: list[str], start: int, scales: dict[str, int]) -> tuple[str, int] | None:
    """Read the digits after "point": one word per digit ("two five"), or one number ("vingt-cinq")."""
    digits = ""
    index = start
    while index < len(tokens) and tokens[index] in _UNIT_WORDS:
        digits += str(_UNIT_WORDS[tokens[index]])
        index += 1
    if len(digits) > 1:
        return digits, index
    integer = _parse_integer_words(tokens, start, scales)
    if integer is None:
        return None
    value, end = integer
    return str(value), end


class _IntegerReader:
    """The state of an integer read word by word: completed scale groups and the current group."""

    def __init__(self) -> None:
        self.total = 0  # sum of completed groups, such as 2000 in "two thousand three hundred"
        self.group = 0  # the group under 1000 being read
        self.last: str | None = None  # category of the last word read
        self.last_scale = float("inf")

    def accepts(self, category: str, value: int) -> bool:
        last = self.last
        if category == "unit":
            # Zero is a number on its own only: "zero", never "twenty zero".
            return last is None if value == 0 else last in (None, "hundred", "scale", "tens")
        if category == "teen":
            # French 70-79 and 90-99: "soixante-dix", "quatre-vingt-onze".
            french_compound = last == "tens" and self.group % 100 in (60, 80)
            return last in (None, "hundred", "scale") or french_compound
        if category == "tens":
            return last in (None, "hundred", "scale")
        if category == "hundred":
            # "cent", "two hundred", "nineteen hundred", "mille cent".
            return last is None or (last in ("unit", "teen") and self.group < 100) or (
                last == "scale" and self.group == 0
            )
        # A scale word: each is smaller than the one before ("a million two thousand").
        return value < self.last_scale

    def read(self, category: str, value: int) -> None:
        if category in ("unit", "teen", "tens"):
            self.group += value
        elif category == "hundred":
            self.group = (self.group or 1) * 100
        elif category == "scale":
            self.total += (self.group or 1) * value
            self.group = 0
            self.last_scale = value
        self.last = category

    @property
    def value(self) -> int:
        return self.total + self.group


def _categorize(tokens: list[str], index: int, scales: dict[str, int]) -> tuple[str, int, int] | None:
    """Return (category, value, width in tokens) of the number word at tokens[index]."""
    word = tokens[index]
    following = tokens[index + 1] if index + 1 < len(tokens) else ""
    if word == "quatre" and following in ("vingt", "vingts"):
        return "tens", 80, 2
    if word == "dix" and following in ("sept", "huit", "neuf"):
        return "teen", 10 + _UNIT_WORDS[following], 2
    if word in ("a", "an") and (following in _HUNDRED_WORDS or following in scales):
        return "unit", 1, 1
    if word in _UNIT_WORDS:
        return "unit", _UNIT_WORDS[word], 1
    if word in _TEEN_WORDS:
        return "teen", _TEEN_WORDS[word], 1
    if word in _TENS_WORDS:
        return "tens", _TENS_WORDS[word], 1
    if word in _HUNDRED_WORDS:
        return "hundred", 100, 1
    if word in scales:
        return "scale", scales[word], 1
    return None


def _parse_integer_words(tokens: list[str], start: int, scales: dict[str, int]) -> tuple[int, int] | None:
    reader = _IntegerReader()
    index = start
    while index < len(tokens):
        # "and"/"et" belongs to the number only when a number word that fits follows it:
        # "one hundred and five", "vingt et un", but not "three and four".
        skip = 1 if tokens[index] in _AND_WORDS and reader.last in ("tens", "hundred", "scale") else 0
        if skip and index + 1 >= len(tokens):
            break
        word = _categorize(tokens, index + skip, scales)
        if word is None:
            break
        category, value, width = word
        if skip and not _fits_after_and(reader, category, value):
            break
        if not reader.accepts(category, value):
            break
        reader.read(category, value)
        index += skip + width
        if category == "unit" and value == 0:
            break
    if reader.last is None:
        return None
    return reader.value, index


def _fits_after_and(reader: _IntegerReader, category: str, value: int) -> bool:
    if reader.last == "tens":
        # French: "vingt et un", "soixante et onze".
        return (category == "unit" and value == 1) or (category == "teen" and value == 11 and reader.group % 100 == 60)
    # English: "one hundred and five", "one thousand and twenty".
    return category in ("unit", "teen", "tens") and value > 0


# --- durations ------------------------------------------------------------------------

_UNIT_SECONDS = {
    "hour": 3600, "hours": 3600, "hr": 3600, "hrs": 3600, "h": 3600, "heure": 3600, "heures": 3600,
    "minute": 60, "minutes": 60, "min": 60, "mins": 60, "mn": 60,
    "second": 1, "seconds": 1, "sec": 1, "secs": 1, "s": 1, "seconde": 1, "secondes": 1,
}
_ONE_WORDS = {"a", "an", "un", "une"}


@dataclass(frozen=True)
class ParsedDuration:
    seconds: Fraction
    #: Index of the first token after the duration.
    end: int


def parse_duration(tokens: list[str], start: int, language: str = "en") -> ParsedDuration | None:
    """Parse the duration that begins at tokens[start]; None if there is none.

    Examples: "10 minutes", "an hour and a half", "une heure trente", "1 h 30",
    "half an hour", "un quart d'heure". Each unit counts once.
    """
    total = Fraction(0)
    index = start
    used_units: set[int] = set()
    while index < len(tokens):
        if used_units and tokens[index] in _AND_WORDS and index + 1 < len(tokens):
            part = _parse_duration_part(tokens, index + 1, language, used_units)
            if part is not None:
                index = part[1]
                total += part[0]
                continue
        part = _parse_duration_part(tokens, index, language, used_units)
        if part is not None:
            total += part[0]
            index = part[1]
            continue
        # "une heure trente", "1 h 30": a bare number after the hours counts minutes.
        if used_units == {3600}:
            minutes = parse_number(tokens, index, language)
            if minutes is not None and 0 < minutes.value < 60 and (
                minutes.end >= len(tokens) or tokens[minutes.end] not in _UNIT_SECONDS
            ):
                total += minutes.value * 60
                used_units.add(60)
                index = minutes.end
                continue
        break
    if not used_units:
        return None
    return ParsedDuration(total, index)


def _parse_duration_part(
    tokens: list[str], start: int, language: str, used_units: set[int]
) -> tuple[Fraction, int] | None:
    """Parse one amount and unit, updating `used_units`; each unit may appear once."""
    fixed = _parse_fixed_duration(tokens, start)
    if fixed is not None:
        seconds, end, unit = fixed
        if unit in used_units:
            return None
        used_units.add(unit)
        return seconds, end

    if start < len(tokens) and tokens[start] in _ONE_WORDS:
        amount, index = Fraction(1), start + 1
    else:
        number = parse_number(tokens, start, language)
        if number is None or number.value < 0:
            return None
        amount, index = number.value, number.end
    # "one and a half hours"
    if tokens[index : index + 3] == ["and", "a", "half"]:
        amount += Fraction(1, 2)
        index += 3
    if index >= len(tokens) or tokens[index] not in _UNIT_SECONDS:
        return None
    unit = _UNIT_SECONDS[tokens[index]]
    if unit in used_units:
        return None
    used_units.add(unit)
    index += 1
    # "an hour and a half", "une heure et demie"
    if tokens[index : index + 3] == ["and", "a", "half"]:
        amount += Fraction(1, 2)
        index += 3
    elif index + 1 < len(tokens) and tokens[index] == "et" and tokens[index + 1] in ("demi", "demie"):
        amount += Fraction(1, 2)
        index += 2
    return amount * unit, index


_FIXED_DURATIONS: tuple[tuple[tuple[str, ...], int, int], ...] = (
    # (words, seconds, unit they count as)
    (("half", "an", "hour"), 1800, 3600),
    (("half", "a", "minute"), 30, 60),
    (("a", "quarter", "of", "an", "hour"), 900, 3600),
    (("quarter", "of", "an", "hour"), 900, 3600),
    (("three", "quarters", "of", "an", "hour"), 2700, 3600),
    (("une", "demi", "heure"), 1800, 3600),
    (("demi", "heure"), 1800, 3600),
    (("une", "demi", "minute"), 30, 60),
    (("un", "quart", "d", "heure"), 900, 3600),
    (("quart", "d", "heure"), 900, 3600),
    (("trois", "quarts", "d", "heure"), 2700, 3600),
)


def _parse_fixed_duration(tokens: list[str], start: int) -> tuple[Fraction, int, int] | None:
    for words, seconds, unit in _FIXED_DURATIONS:
        if tuple(tokens[start : start + len(words)]) == words:
            return Fraction(seconds), start + len(words), unit
    return None
