"""Sentence splitting and text normalisation for speech synthesis.

`split_sentences` and `SentenceBuffer` cut LLM output into sentences so that speech can
start before the reply is complete. `to_speakable` turns one piece of Markdown-ish LLM
text into plain words that a TTS voice reads correctly: no markup, no emoji, and
numbers, amounts, dates and times written out in English or French.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

from num2words import CONVERTER_CLASSES, num2words

# --------------------------------------------------------------------------------------
# Sentence boundaries
# --------------------------------------------------------------------------------------

# A boundary candidate is a run of end marks or a line break. Full-width marks end a
# sentence even without a following space because Chinese and Japanese use no spaces.
_CANDIDATE_RE = re.compile(r"[.!?…]+|[。！？]+|\n")
_CLOSERS_RE = re.compile(r"[\"'”’)\]»」』]*")
_HORIZONTAL_SPACE_RE = re.compile(r"[ \t\r\f\v\u00a0\u2009\u202f]*")

# The start of a Markdown list item or heading, from the start of its line.
_BLOCK_START_RE = re.compile(r"[ \t]*(?:[-*+•]|\d{1,3}[.)]|#{1,6})[ \t]")
# Text that could still grow into `_BLOCK_START_RE` once more characters arrive.
_BLOCK_START_PREFIX_RE = re.compile(r"[ \t]*(?:[-*+•]|\d{1,3}[.)]?|#{1,6})?")
# The number of a numbered list item, from the start of its line ("  1" of "  1. Step").
_LIST_NUMBER_RE = re.compile(r"[ \t]*\d{1,3}")
# The token that ends right before a period: letters, digits and inner dots ("e.g").
_TOKEN_BEFORE_RE = re.compile(r"[^\s(\[{«\"“'‘]+$")
# Tokens longer than this are never abbreviations, so the search looks back no further.
_MAX_TOKEN_LOOKBACK = 32

# Abbreviations after which a period never ends a sentence, lowercase and without the
# final period. Single letters ("J. F. Kennedy", French "M. Dupont") are handled apart.
# "etc." is not here because it often ends a sentence, so the case of the next word
# decides.
_ABBREVIATIONS = frozenset(
    {
        # English titles and Latin abbreviations.
        "mr", "mrs", "ms", "dr", "prof", "sr", "st", "mt", "vs", "cf", "e.g", "i.e",
        "approx", "fig",
        # French.
        "mme", "mlle", "pr", "ex", "env", "av", "bd",
    }
)  # fmt: skip


@dataclass(frozen=True)
class _Boundary:
    """A decision about one boundary candidate."""

    end: int  # where the sentence ends (exclusive)
    resume: int  # where scanning continues
    is_break: bool


def _is_block_line(text: str, newline: int) -> bool:
    """Return whether the line that ends at `newline` is a list item or heading."""
    line_start = text.rfind("\n", 0, newline) + 1
    return _BLOCK_START_RE.match(text, line_start, newline) is not None


def _decide_newline(text: str, newline: int, final: bool) -> _Boundary | None:
    """Decide whether the line break at `newline` ends a sentence.

    A line break ends a sentence after a list item or heading, before one, and at a
    blank line. Other line breaks are hard wraps inside a paragraph. Returns None when
    the text ends too early to tell, unless `final` is set because no more text will come.
    """
    after = newline + 1
    undecided = _Boundary(newline, after, False) if final else None

    if _is_block_line(text, newline):
        return _Boundary(newline, after, True)

    next_line_end = text.find("\n", after)
    if next_line_end == -1:
        next_line_end = len(text)
    next_line = text[after:next_line_end]

    if next_line.strip() == "":
        if next_line_end < len(text):
            return _Boundary(newline, after, True)  # a blank line
        return undecided
    if _BLOCK_START_RE.match(next_line):
        return _Boundary(newline, after, True)
    if next_line_end == len(text) and _BLOCK_START_PREFIX_RE.fullmatch(next_line):
        return undecided
    return _Boundary(newline, after, False)


def _is_list_number(text: str, period: int) -> bool:
    """Return whether the period at `period` follows a list number at a line start."""
    line_start = text.rfind("\n", 0, period) + 1
    return _LIST_NUMBER_RE.fullmatch(text, line_start, period) is not None


def _is_abbreviation(text: str, period: int) -> bool:
    """Return whether the period at `period` closes an abbreviation or an initial."""
    window_start = max(0, period - _MAX_TOKEN_LOOKBACK)
    token_match = _TOKEN_BEFORE_RE.search(text, window_start, period)
    if token_match is None:
        return False
    token = token_match.group()
    if len(token) == 1 and token.isalpha():
        return True
    return token.lower() in _ABBREVIATIONS


def _decide_mark(text: str, start: int, end: int, final: bool) -> _Boundary | None:
    """Decide whether the end marks `text[start:end]` end a sentence.

    Returns None when the text ends too early to tell, unless `final` is set.
    """
    mark = text[start:end]
    closers_end = _CLOSERS_RE.match(text, end).end()
    at_end = _Boundary(len(text), len(text), True)

    if mark[0] in "。！？":
        if closers_end == len(text):
            return at_end if final else None
        return _Boundary(closers_end, closers_end, True)

    space_end = _HORIZONTAL_SPACE_RE.match(text, closers_end).end()
    if space_end == len(text):
        return at_end if final else None
    if space_end == closers_end and text[space_end] != "\n":
        return _Boundary(closers_end, closers_end, False)  # "3.5", "example.com", "Hi!x"
    if text[space_end] == "\n":
        return _Boundary(closers_end, closers_end, True)

    if "!" in mark or "?" in mark:
        return _Boundary(closers_end, closers_end, True)

    if mark == "." and closers_end == end:
        if _is_abbreviation(text, start):
            return _Boundary(closers_end, closers_end, False)
        if _is_list_number(text, start):
            return _Boundary(closers_end, closers_end, False)  # "1. First step"

    if text[space_end].islower():
        return _Boundary(closers_end, closers_end, False)  # "e.g. this", "etc. and"
    return _Boundary(closers_end, closers_end, True)


def _scan_sentences(text: str, start: int, final: bool) -> tuple[list[str], int]:
    """Split `text[start:]` into sentences, looking back before `start` where needed.

    Returns the complete sentences and the index where the unfinished rest begins. With
    `final` set, the text is complete and the rest is the last sentence.
    """
    sentences: list[str] = []
    sentence_start = start
    position = start

    while True:
        candidate = _CANDIDATE_RE.search(text, position)
        if candidate is None:
            break
        if text[sentence_start : candidate.start()].strip() == "":
            position = candidate.end()  # marks or line breaks before any words
            continue

        if candidate.group() == "\n":
            boundary = _decide_newline(text, candidate.start(), final)
        else:
            boundary = _decide_mark(text, candidate.start(), candidate.end(), final)
        if boundary is None:
            break

        if boundary.is_break:
            sentence = text[sentence_start : boundary.end].strip()
            if sentence:
                sentences.append(sentence)
            sentence_start = boundary.end
        position = max(boundary.resume, candidate.end())

    if final:
        rest = text[sentence_start:].strip()
        if rest:
            sentences.append(rest)
        sentence_start = len(text)
    return sentences, sentence_start


def split_sentences(text: str) -> list[str]:
    """Split text into sentences, each stripped of surrounding whitespace.

    A sentence ends at . ! ? … (with any closing quotes or brackets) followed by a space
    and a word that is not lowercase, at ! or ? followed by whitespace, at full-width
    。！？, at a blank line, and at line breaks around list items and headings.
    Abbreviations such as "Dr." or "e.g.", initials, decimals ("3.5"), times and list
    numbers ("1. Step") do not end a sentence. Whitespace-only parts are dropped.
    """
    sentences, _ = _scan_sentences(text, 0, final=True)
    return sentences


class SentenceBuffer:
    """Collects streamed text and returns each sentence once it is complete.

    A sentence is complete when the text after it shows that it ended, such as a space
    and then an uppercase letter. Feeding any split of a text and then calling `flush`
    gives the same sentences as `split_sentences` on the whole text.
    """

    def __init__(self) -> None:
        self._text = ""
        self._start = 0  # index in `_text` where the unfinished sentence begins

    def feed(self, piece: str) -> list[str]:
        """Append `piece` and return the sentences it completed, possibly none."""
        self._text += piece
        sentences, self._start = _scan_sentences(self._text, self._start, final=False)
        self._drop_consumed_text()
        return sentences

    def flush(self) -> str | None:
        """Return the unfinished rest, or None when only whitespace is left, and reset."""
        sentences, _ = _scan_sentences(self._text, self._start, final=True)
        self._text = ""
        self._start = 0
        if not sentences:
            return None
        # The final scan treats every undecided boundary as no boundary, so the rest is
        # at most one sentence.
        return " ".join(sentences)

    def _drop_consumed_text(self) -> None:
        # Boundary decisions look back at most to the start of the current line, so the
        # text before that line can go.
        line_start = self._text.rfind("\n", 0, self._start)
        if line_start > 0:
            self._text = self._text[line_start:]
            self._start -= line_start


# --------------------------------------------------------------------------------------
# Markup and symbols
# --------------------------------------------------------------------------------------

_CONTROL_CHARS_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CODE_BLOCK_RE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?^[ \t]*\1[^\n]*$", re.M | re.S)
_CODE_FENCE_RE = re.compile(r"^[ \t]*(?:```|~~~)[^\n]*$", re.M)
# SSML and HTML tags, and special tokens such as <|im_end|>. "a < b" stays.
_TAG_RE = re.compile(r"</?[A-Za-z|!][^<>\n]*>")
_PICTOGRAPH_RE = re.compile(
    "["
    "\U0001f000-\U0001faff"  # emoji, pictographs, playing cards, flags, skin tones
    "\u2190-\u21ff"  # arrows
    "\u2300-\u23ff"  # technical symbols such as ⌚ and ⏰
    "\u2460-\u24ff"  # enclosed alphanumerics
    "\u25a0-\u27bf"  # geometric shapes, miscellaneous symbols, dingbats
    "\u2900-\u297f\u2b00-\u2bff"  # more arrows, stars
    "\u3030\u303d\u3297\u3299"
    "\u00a9\u00ae\u2122\u2139"  # © ® ™ ℹ
    "\ufe00-\ufe0f\u200d\u20e3"  # variation selectors, zero-width joiner, keycap
    "\U000e0020-\U000e007f"  # tag characters of subdivision flags
    "\ue000-\uf8ff"  # private use area
    "]+"
)

_HEADING_RE = re.compile(r"[ \t]{0,3}#{1,6}[ \t]+(.*?)[ \t#]*")
_LIST_ITEM_RE = re.compile(r"[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+(.*)")
_BLOCKQUOTE_RE = re.compile(r"[ \t]*(?:>[ \t]?)+(.*)")
_HORIZONTAL_RULE_RE = re.compile(r"[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*")
_TABLE_ROW_RE = re.compile(r"[ \t]*\|(.*)\|[ \t]*")
_TABLE_SEPARATOR_RE = re.compile(r"[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)+\|?[ \t]*")

_LINK_RE = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*\)")
_REFERENCE_LINK_RE = re.compile(r"\[([^\]\n]+)\]\[[^\]\n]*\]")
_STRONG_RE = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EMPHASIS_STAR_RE = re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])")
_EMPHASIS_UNDERSCORE_RE = re.compile(r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)")
_STRIKETHROUGH_RE = re.compile(r"~~(.+?)~~")
_INLINE_CODE_RE = re.compile(r"(`+)(.+?)\1")
# Backticks, and asterisks left from unbalanced emphasis. An asterisk between digits or
# spaces, as in "2 * 3", is kept.
_STRAY_MARKUP_RE = re.compile(r"`+|\*{2,}|(?<![\d\s])\*|\*(?![\d\s])")

_SPACE_RE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCTUATION_RE = re.compile(r"\s+([.,])")
_SPACE_BEFORE_PUNCTUATION_EN_RE = re.compile(r"\s+([;:!?])")
_LEADING_PUNCTUATION_RE = re.compile(r"^[\s.,;:!?…]+")
_SENTENCE_END_CHARS = ".!?…:;,。！？"


def _remove_markup_inline(text: str) -> str:
    """Remove Markdown links, emphasis and code spans, keeping their text."""
    text = _LINK_RE.sub(r"\1", text)
    text = _REFERENCE_LINK_RE.sub(r"\1", text)
    text = _INLINE_CODE_RE.sub(r"\2", text)
    text = _STRONG_RE.sub(r"\2", text)
    text = _EMPHASIS_STAR_RE.sub(r"\1", text)
    text = _EMPHASIS_UNDERSCORE_RE.sub(r"\1", text)
    text = _STRIKETHROUGH_RE.sub(r"\1", text)
    return _STRAY_MARKUP_RE.sub("", text)


def _parse_line(line: str) -> tuple[str, bool]:
    """Strip the block markup of one line and return its text and whether it is a block.

    Blocks are headings, list items and table rows. Each is spoken as a sentence.
    """
    if _HORIZONTAL_RULE_RE.fullmatch(line) or _TABLE_SEPARATOR_RE.fullmatch(line):
        return "", False
    match = _BLOCKQUOTE_RE.fullmatch(line)
    if match:
        line = match.group(1)
    match = _HEADING_RE.fullmatch(line)
    if match:
        return match.group(1), True
    match = _LIST_ITEM_RE.fullmatch(line)
    if match:
        return match.group(1), True
    match = _TABLE_ROW_RE.fullmatch(line)
    if match:
        cells = [cell.strip() for cell in match.group(1).split("|")]
        return ", ".join(cell for cell in cells if cell), True
    return line, False


def _join_lines(text: str) -> str:
    """Join lines into one text, ending a sentence after each block and paragraph.

    A line that ends a sentence without end punctuation gets a period, which makes the
    voice pause. Other line breaks are hard wraps and become spaces.
    """
    pieces: list[str] = []
    break_pending = False
    previous_was_block = False
    for raw_line in text.split("\n"):
        line, is_block = _parse_line(raw_line)
        line = _remove_markup_inline(line).strip()
        if not line:
            break_pending = bool(pieces)
            continue
        if pieces and (break_pending or is_block or previous_was_block):
            if pieces[-1][-1] not in _SENTENCE_END_CHARS:
                pieces[-1] += "."
        pieces.append(line)
        break_pending = False
        previous_was_block = is_block
    return " ".join(pieces)


def _remove_markup(text: str) -> str:
    """Remove Markdown, tags and pictographs, leaving one line of plain text.

    Complete fenced code blocks are dropped with their content, because code read
    aloud is noise. A lone fence line, such as the start of a block that `SentenceBuffer`
    cut into several sentences, is dropped but the text after it is kept.
    """
    text = _CONTROL_CHARS_RE.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CODE_BLOCK_RE.sub("", text)
    text = _CODE_FENCE_RE.sub("", text)
    text = _TAG_RE.sub(" ", text)
    text = _PICTOGRAPH_RE.sub(" ", text)
    return _join_lines(text)


# --------------------------------------------------------------------------------------
# Language data
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Words:
    """The words that one language needs beyond what num2words provides."""

    decimal_point: str
    percent: str
    minus: str
    and_word: str
    # Whether a value takes the singular: English uses it for exactly 1, French for
    # values under 2 ("1,5 kilogramme").
    singular_below_two: bool
    months: tuple[str, ...]
    # symbol -> (unit singular, unit plural, subunit singular, subunit plural)
    currencies: dict[str, tuple[str, str, str, str]]
    # unit symbol -> (singular, plural)
    units: dict[str, tuple[str, str]]
    # scale word as written -> scale word to speak ("k" -> "thousand")
    scales: dict[str, str]
    abbreviations: dict[str, str]


_ENGLISH = _Words(
    decimal_point="point",
    percent="percent",
    minus="minus",
    and_word="and",
    singular_below_two=False,
    months=(
        "January", "February", "March", "April", "May", "June", "July", "August",
        "September", "October", "November", "December",
    ),
    currencies={
        "$": ("dollar", "dollars", "cent", "cents"),
        "€": ("euro", "euros", "cent", "cents"),
        "£": ("pound", "pounds", "penny", "pence"),
        "¥": ("yen", "yen", "sen", "sen"),
    },
    units={
        "kg": ("kilogram", "kilograms"),
        "g": ("gram", "grams"),
        "mg": ("milligram", "milligrams"),
        "km": ("kilometer", "kilometers"),
        "m": ("meter", "meters"),
        "cm": ("centimeter", "centimeters"),
        "mm": ("millimeter", "millimeters"),
        "l": ("liter", "liters"),
        "ml": ("milliliter", "milliliters"),
        "km/h": ("kilometer per hour", "kilometers per hour"),
        "mph": ("mile per hour", "miles per hour"),
        "°c": ("degree Celsius", "degrees Celsius"),
        "°f": ("degree Fahrenheit", "degrees Fahrenheit"),
        "°": ("degree", "degrees"),
        "kwh": ("kilowatt hour", "kilowatt hours"),
        "gb": ("gigabyte", "gigabytes"),
        "mb": ("megabyte", "megabytes"),
        "tb": ("terabyte", "terabytes"),
        "min": ("minute", "minutes"),
        "h": ("hour", "hours"),
    },
    scales={
        "k": "thousand", "thousand": "thousand", "thousands": "thousand",
        "million": "million", "millions": "million", "billion": "billion",
        "billions": "billion", "trillion": "trillion", "trillions": "trillion",
    },
    abbreviations={
        "e.g.": "for example", "i.e.": "that is", "etc.": "et cetera", "vs.": "versus",
        "mr.": "Mister", "mrs.": "Missus", "dr.": "Doctor", "prof.": "Professor",
    },
)  # fmt: skip

_FRENCH = _Words(
    decimal_point="virgule",
    percent="pour cent",
    minus="moins",
    and_word="et",
    singular_below_two=True,
    months=(
        "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
        "septembre", "octobre", "novembre", "décembre",
    ),
    currencies={
        "$": ("dollar", "dollars", "cent", "cents"),
        "€": ("euro", "euros", "centime", "centimes"),
        "£": ("livre", "livres", "penny", "pence"),
        "¥": ("yen", "yens", "sen", "sens"),
    },
    units={
        "kg": ("kilogramme", "kilogrammes"),
        "g": ("gramme", "grammes"),
        "mg": ("milligramme", "milligrammes"),
        "km": ("kilomètre", "kilomètres"),
        "m": ("mètre", "mètres"),
        "cm": ("centimètre", "centimètres"),
        "mm": ("millimètre", "millimètres"),
        "l": ("litre", "litres"),
        "ml": ("millilitre", "millilitres"),
        "km/h": ("kilomètre heure", "kilomètres heure"),
        "mph": ("mile par heure", "miles par heure"),
        "°c": ("degré Celsius", "degrés Celsius"),
        "°f": ("degré Fahrenheit", "degrés Fahrenheit"),
        "°": ("degré", "degrés"),
        "kwh": ("kilowattheure", "kilowattheures"),
        "go": ("gigaoctet", "gigaoctets"),
        "mo": ("mégaoctet", "mégaoctets"),
        "to": ("téraoctet", "téraoctets"),
        "min": ("minute", "minutes"),
        "h": ("heure", "heures"),
    },
    scales={
        "k": "mille", "mille": "mille", "million": "million", "millions": "million",
        "milliard": "milliard", "milliards": "milliard",
    },
    abbreviations={
        "p. ex.": "par exemple", "c.-à-d.": "c'est-à-dire", "etc.": "et cetera",
        "vs.": "contre", "m.": "Monsieur", "mme": "Madame", "mlle": "Mademoiselle",
        "dr": "Docteur", "dr.": "Docteur",
    },
)  # fmt: skip

_LANGUAGE_WORDS = {"en": _ENGLISH, "fr": _FRENCH}
_CURRENCY_CODES = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}

# Numbers that num2words reads as one number. Longer digit strings, such as phone or
# card numbers, are read digit by digit.
_MAX_CARDINAL_DIGITS = 15

# Errors from num2words: NotImplementedError for an unsupported language, and the
# others as a safety net against its language modules, so that a failed reading keeps
# the digits.
_NUM2WORDS_ERRORS = (
    NotImplementedError, ArithmeticError, ValueError, TypeError, KeyError, IndexError,
)  # fmt: skip


@dataclass(frozen=True)
class _Language:
    """A language code resolved for number reading."""

    num2words_code: str | None  # None when num2words does not support the language
    words: _Words | None  # None for languages other than English and French

    @property
    def is_french(self) -> bool:
        return self.words is _FRENCH

    @property
    def flavor(self) -> str:
        """The key of the number patterns: French, or English for all other languages."""
        return "fr" if self.is_french else "en"


def _resolve_language(language: str) -> _Language:
    """Resolve a code such as "en", "fr-CA" or "de_DE" for num2words and the word tables."""
    code = language.strip().replace("-", "_")
    base = code.split("_")[0].lower()
    full = f"{base}_{code.split('_')[1].upper()}" if "_" in code else base
    if full in CONVERTER_CLASSES:
        num2words_code: str | None = full
    elif base in CONVERTER_CLASSES:
        num2words_code = base
    else:
        num2words_code = None
    return _Language(num2words_code, _LANGUAGE_WORDS.get(base))


# --------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------

# A number with an optional sign. The sign counts only after a space, a bracket or the
# start, so "COVID-19" keeps its hyphen. English groups thousands with commas, French
# with spaces, and French accepts both "3,5" and "3.5" as decimals.
_SIGN = r"(?P<sign>(?<![^\s(\[])[-−])?"
_NUMBER_PATTERNS = {
    "en": _SIGN + r"(?<![\w.])(?P<number>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)",
    "fr": _SIGN
    + r"(?<![\w.])(?P<number>\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?:[.,]\d+)?"
    + r"|\d{1,3}(?:,\d{3})+\.\d+|\d{1,3}(?:\.\d{3})+,\d+|\d+(?:[.,]\d+)?)",
}
_SCALE = (
    r"(?:\s?(?P<scale>[kK]|thousands?|millions?|billions?|trillions?|mille|milliards?)(?!\w))?"
)
_CURRENCY_SYMBOL = r"(?P<symbol>[$€£¥]|(?:USD|EUR|GBP|JPY)(?!\w))"
_UNIT_PATTERNS = {
    "en": r"km/h|kWh|°C|°F|°|kg|mg|km|cm|mm|mL|ml|GB|MB|TB|mph|min|g|m|L|l|h",
    "fr": r"km/h|kWh|°C|°F|°|kg|mg|km|cm|mm|mL|ml|Go|Mo|To|min|g|m|L|l|h",
}


def _compile_by_flavor(template: str, **extra: dict[str, str]) -> dict[str, re.Pattern[str]]:
    """Compile `template` once for each number flavor, filling {number} and `extra`."""
    compiled = {}
    for flavor, number in _NUMBER_PATTERNS.items():
        fields = {name: values[flavor] for name, values in extra.items()}
        compiled[flavor] = re.compile(template.format(number=number, **fields))
    return compiled


_VERSION_RE = re.compile(r"(?<![\w.])(?P<prefix>[vV]?)(?P<number>\d+(?:\.\d+){2,})(?![\w.])")
_ISO_DATE_RE = re.compile(r"(?<![\w-])(\d{4})-(\d{2})-(\d{2})(?![\w-])")
_TIME_RE = re.compile(r"(?<![\w:])([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?(?![\d:])")
_FRENCH_TIME_RE = re.compile(r"(?<!\w)([01]?\d|2[0-3]) ?h ?([0-5]\d)?(?!\w)")
_CURRENCY_BEFORE_RE = _compile_by_flavor(
    r"(?<!\w)" + _CURRENCY_SYMBOL + r" ?{number}" + _SCALE
)
_CURRENCY_AFTER_RE = _compile_by_flavor(r"{number}" + _SCALE + r" ?" + _CURRENCY_SYMBOL)
_PERCENT_RE = _compile_by_flavor(r"{number}\s?%")
_UNIT_RE = _compile_by_flavor(r"{number} ?(?P<unit>{units})(?![\w/])", units=_UNIT_PATTERNS)
_ORDINAL_RE = {
    "en": re.compile(r"(?<!\w)(\d+)(st|nd|rd|th)(?!\w)"),
    "fr": re.compile(r"(?<!\w)(\d+)(er|re|ère|nde?|ème|eme|e)(?!\w)"),
}
_DECADE_RE = re.compile(r"(?<!\w)'?(\d0|1[1-9]\d0|20\d0)s(?!\w)")
_NUMBER_RE = _compile_by_flavor(r"{number}")

_YEAR_RANGE = range(1100, 2100)
# French scale words that are nouns and so take "de" before a unit ("un million d'euros").
_FRENCH_NOUN_SCALES = ("million", "millions", "milliard", "milliards")


@dataclass(frozen=True)
class _Number:
    """A number as written, split into sign, integer digits and fraction digits."""

    negative: bool
    integer: str
    fraction: str

    @property
    def value(self) -> Decimal:
        sign = "-" if self.negative else ""
        return Decimal(f"{sign}{self.integer}.{self.fraction or '0'}")


def _parse_number(match: re.Match[str], language: _Language) -> _Number:
    """Build a `_Number` from a match of a `_NUMBER_PATTERNS` pattern."""
    written = match.group("number")
    if language.is_french:
        # The last of "," and "." is the decimal separator, so "1,234.5" and
        # "1.234,5" both parse, as well as "3,5" and "3.5".
        digits = re.sub(r"[ \u00a0\u202f]", "", written)
        separator = max(digits.rfind(","), digits.rfind("."))
        if separator == -1:
            integer, fraction = digits, ""
        else:
            integer = re.sub(r"[.,]", "", digits[:separator])
            fraction = digits[separator + 1 :]
    else:
        integer, _, fraction = written.replace(",", "").partition(".")
    return _Number(bool(match.group("sign")), integer, fraction)


def _spell(value: int | Decimal, language: _Language, to: str = "cardinal") -> str | None:
    """Return num2words' reading of `value`, or None when num2words cannot read it."""
    if language.num2words_code is None:
        return None
    try:
        return num2words(value, lang=language.num2words_code, to=to)
    except _NUM2WORDS_ERRORS:
        return None


def _spell_digits(digits: str, language: _Language) -> str | None:
    words = [_spell(int(digit), language) for digit in digits]
    if any(word is None for word in words):
        return None
    return " ".join(words)  # type: ignore[arg-type]


def _spell_integer(digits: str, language: _Language) -> str | None:
    """Read an integer, digit by digit when it has a leading zero or is very long."""
    if len(digits) > _MAX_CARDINAL_DIGITS or (len(digits) > 1 and digits[0] == "0"):
        return _spell_digits(digits, language)
    return _spell(int(digits), language)


def _spell_fraction(digits: str, language: _Language) -> str | None:
    """Read the digits after the decimal separator.

    English reads them one by one ("three point one four"). French reads up to three
    digits as a number after the leading zeros ("trois virgule zéro cinq", "trois
    virgule quatorze").
    """
    if not language.is_french or len(digits) > 3:
        return _spell_digits(digits, language)
    significant = digits.lstrip("0")
    zeros = len(digits) - len(significant)
    words = [_spell(0, language)] * zeros
    if significant:
        words.append(_spell(int(significant), language))
    if any(word is None for word in words):
        return None
    return " ".join(words)  # type: ignore[arg-type]


def _spell_number(number: _Number, language: _Language) -> str | None:
    """Read a number, with its sign and decimals, in the language."""
    if language.words is None:
        if number.fraction:
            return _spell(number.value, language)
        if number.negative:
            return _spell(-int(number.integer), language)
        return _spell_integer(number.integer, language)

    words = _spell_integer(number.integer, language)
    if words is None:
        return None
    if number.fraction:
        fraction = _spell_fraction(number.fraction, language)
        if fraction is None:
            return None
        words = f"{words} {language.words.decimal_point} {fraction}"
    if number.negative:
        words = f"{language.words.minus} {words}"
    return words


def _is_singular(number: _Number, words: _Words) -> bool:
    value = abs(number.value)
    if words.singular_below_two:
        return value < 2
    return value == 1 and not number.fraction


def _feminine(words: str) -> str:
    """Make a French number feminine ("vingt et un" -> "vingt et une")."""
    return words[:-2] + "une" if words.endswith("un") else words


def _substitute(pattern: re.Pattern[str], text: str, convert) -> str:
    """Replace each match of `pattern` by `convert(match)`, unless that returns None.

    A space separates the words from letters or digits that touch the match, as in
    "4K" -> "four K".
    """

    def replace(match: re.Match[str]) -> str:
        words = convert(match)
        if words is None:
            return match.group()
        if match.end() < len(text) and text[match.end()].isalnum():
            words += " "
        if match.start() > 0 and text[match.start() - 1].isalnum():
            words = " " + words
        return words

    return pattern.sub(replace, text)


def _read_version(match: re.Match[str], language: _Language) -> str | None:
    """Read "v1.2.3" as "version one point two point three"."""
    parts = [_spell_integer(part, language) for part in match.group("number").split(".")]
    if any(part is None for part in parts):
        return None
    if language.words is None:
        return match.group("prefix") + ".".join(parts)  # type: ignore[arg-type]
    words = " point ".join(parts)  # type: ignore[arg-type]
    return f"version {words}" if match.group("prefix") else words


def _read_iso_date(match: re.Match[str], language: _Language) -> str | None:
    """Read "2024-03-05" as "March fifth, twenty twenty-four" or "cinq mars ..."."""
    year, month, day = (int(group) for group in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    year_words = _spell(year, language, to="year") or _spell(year, language)
    if language.words is None:
        parts = [year_words, _spell(month, language), _spell(day, language)]
        return None if None in parts else " ".join(parts)  # type: ignore[arg-type]

    month_name = language.words.months[month - 1]
    if language.is_french:
        day_words = "premier" if day == 1 else _spell(day, language)
        return f"{day_words} {month_name} {year_words}"
    return f"{month_name} {_spell(day, language, to='ordinal')}, {year_words}"


def _read_time(hours: int, minutes: int, seconds: int | None, language: _Language) -> str | None:
    """Read a clock time: "ten thirty", "ten oh five", "dix heures trente"."""
    hour_words = _spell(hours, language)
    minute_words = _spell(minutes, language)
    second_words = None if seconds is None else _spell(seconds, language)
    if hour_words is None or minute_words is None:
        return None

    if language.words is None:
        words = f"{hour_words} {minute_words}"
        return words if second_words is None else f"{words} {second_words}"

    if language.is_french:
        words = f"{_feminine(hour_words)} {'heure' if hours < 2 else 'heures'}"
        if minutes:
            words += f" {_feminine(minute_words)}"
        if second_words is not None:
            unit = "seconde" if seconds is not None and seconds < 2 else "secondes"
            words += f" et {_feminine(second_words)} {unit}"
        return words

    if minutes == 0:
        words = f"{hour_words} o'clock" if hours <= 12 else f"{hour_words} hundred"
    elif minutes < 10:
        words = f"{hour_words} oh {minute_words}"
    else:
        words = f"{hour_words} {minute_words}"
    if second_words is not None:
        words += f" and {second_words} {'second' if seconds == 1 else 'seconds'}"
    return words


def _read_clock_time(match: re.Match[str], language: _Language) -> str | None:
    seconds = None if match.group(3) is None else int(match.group(3))
    return _read_time(int(match.group(1)), int(match.group(2)), seconds, language)


def _read_french_time(match: re.Match[str], language: _Language) -> str | None:
    minutes = 0 if match.group(2) is None else int(match.group(2))
    return _read_time(int(match.group(1)), minutes, None, language)


def _read_scaled_amount(
    number: _Number, scale: str, words: _Words, language: _Language
) -> str | None:
    """Read "1.5 million" or "5k" without a unit, or return None for an unknown scale."""
    scale_word = words.scales.get(scale.lower())
    amount = _spell_number(number, language)
    if scale_word is None or amount is None:
        return None
    if language.is_french and scale_word != "mille" and not _is_singular(number, words):
        scale_word += "s"
    return f"{amount} {scale_word}"


def _join_amount_and_unit(amount: str, unit: str, language: _Language) -> str:
    """Join an amount and its unit, with the "de" that French puts after "million"."""
    if language.is_french and amount.endswith(_FRENCH_NOUN_SCALES):
        preposition = "d'" if unit[0] in "aeiouyé" else "de "
        return f"{amount} {preposition}{unit}"
    return f"{amount} {unit}"


def _read_money(match: re.Match[str], language: _Language) -> str | None:
    """Read "$3.50" as "three dollars and fifty cents", "5 €" as "cinq euros"."""
    words = language.words
    if words is None:
        return None
    symbol = match.group("symbol")
    symbol = _CURRENCY_CODES.get(symbol.lower(), symbol)
    unit, units, subunit, subunits = words.currencies[symbol]
    number = _parse_number(match, language)

    if match.group("scale"):
        amount = _read_scaled_amount(number, match.group("scale"), words, language)
        return None if amount is None else _join_amount_and_unit(amount, units, language)

    if len(number.fraction) not in (1, 2):
        amount = _spell_number(number, language)
        unit_word = unit if _is_singular(number, words) else units
        return None if amount is None else _join_amount_and_unit(amount, unit_word, language)

    main = _Number(number.negative, number.integer, "")
    cents = int(number.fraction.ljust(2, "0"))
    main_words = _spell_number(main, language)
    cent_words = _spell(cents, language)
    if main_words is None or cent_words is None:
        return None
    parts = []
    if int(number.integer) != 0 or cents == 0:
        unit_word = unit if _is_singular(main, words) else units
        parts.append(_join_amount_and_unit(main_words, unit_word, language))
    if cents:
        parts.append(f"{cent_words} {subunit if cents == 1 else subunits}")
    return f" {words.and_word} ".join(parts)


def _read_percent(match: re.Match[str], language: _Language) -> str | None:
    amount = _spell_number(_parse_number(match, language), language)
    if amount is None or language.words is None:
        return None
    return f"{amount} {language.words.percent}"


def _read_measure(match: re.Match[str], language: _Language) -> str | None:
    """Read a number with a unit symbol: "3.5 kg" -> "three point five kilograms"."""
    words = language.words
    if words is None:
        return None
    names = words.units.get(match.group("unit").lower())
    number = _parse_number(match, language)
    amount = _spell_number(number, language)
    if names is None or amount is None:
        return None
    unit = names[0] if _is_singular(number, words) else names[1]
    return _join_amount_and_unit(amount, unit, language)


def _read_ordinal(match: re.Match[str], language: _Language) -> str | None:
    value = int(match.group(1))
    suffix = match.group(2)
    if language.is_french:
        if value == 1:
            return "premier" if suffix == "er" else "première"
        if value == 2 and suffix.startswith("nd"):
            return "second" if suffix == "nd" else "seconde"
    return _spell(value, language, to="ordinal")


def _read_decade(match: re.Match[str], language: _Language) -> str | None:
    """Read "1920s" as "nineteen twenties" and "80s" as "eighties"."""
    value = int(match.group(1))
    words = _spell(value, language, to="year" if value >= 1000 else "cardinal")
    if words is None:
        return None
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def _read_number(match: re.Match[str], language: _Language) -> str | None:
    """Read a plain number. A four-digit integer from 1100 to 2099 is read as a year."""
    number = _parse_number(match, language)
    is_plain = not number.negative and not number.fraction and match.group("number").isdigit()
    if is_plain and len(number.integer) == 4 and int(number.integer) in _YEAR_RANGE:
        year = _spell(int(number.integer), language, to="year")
        if year is not None:
            return year
    return _spell_number(number, language)


def _spell_numbers(text: str, language: _Language) -> str:
    """Replace numbers, amounts, dates and times with words, most specific forms first."""
    flavor = language.flavor

    def bind(read):
        return lambda match: read(match, language)

    text = _substitute(_VERSION_RE, text, bind(_read_version))
    text = _substitute(_ISO_DATE_RE, text, bind(_read_iso_date))
    text = _substitute(_TIME_RE, text, bind(_read_clock_time))
    if language.is_french:
        text = _substitute(_FRENCH_TIME_RE, text, bind(_read_french_time))
    text = _substitute(_CURRENCY_BEFORE_RE[flavor], text, bind(_read_money))
    text = _substitute(_CURRENCY_AFTER_RE[flavor], text, bind(_read_money))
    text = _substitute(_PERCENT_RE[flavor], text, bind(_read_percent))
    text = _substitute(_UNIT_RE[flavor], text, bind(_read_measure))
    if language.words is not None:
        text = _substitute(_ORDINAL_RE[flavor], text, bind(_read_ordinal))
    if language.words is _ENGLISH:
        text = _substitute(_DECADE_RE, text, bind(_read_decade))
    return _substitute(_NUMBER_RE[flavor], text, bind(_read_number))


# --------------------------------------------------------------------------------------
# Abbreviations and the public entry point
# --------------------------------------------------------------------------------------


def _compile_abbreviations(words: _Words) -> re.Pattern[str]:
    """Compile one pattern for the abbreviations of a language, longest first."""
    variants = set()
    for abbreviation in words.abbreviations:
        variants.add(abbreviation)
        variants.add(abbreviation[0].upper() + abbreviation[1:])
    alternatives = "|".join(re.escape(v) for v in sorted(variants, key=len, reverse=True))
    return re.compile(rf"(?<![\w.])(?:{alternatives})(?![\w])")


_ABBREVIATION_RE = {words: _compile_abbreviations(words) for words in (_ENGLISH, _FRENCH)}


def _expand_abbreviations(text: str, language: _Language) -> str:
    """Replace abbreviations such as "e.g." and "Dr." with the words they stand for.

    "etc." keeps its period where it ends a sentence.
    """
    words = language.words
    if words is None:
        return text

    def replace(match: re.Match[str]) -> str:
        written = match.group()
        expansion = words.abbreviations[written[0].lower() + written[1:]]
        if written[0].isupper():
            expansion = expansion[0].upper() + expansion[1:]
        if written.lower() == "etc." and _ends_sentence(text, match.end()):
            expansion += "."
        return expansion

    return _ABBREVIATION_RE[words].sub(replace, text)


def _ends_sentence(text: str, index: int) -> bool:
    rest = text[index:].lstrip()
    return not rest or not rest[0].islower()


def _tidy(text: str, language: _Language) -> str:
    """Collapse whitespace and remove spaces and stray marks left by the removals."""
    text = _SPACE_RE.sub(" ", text).strip()
    text = _SPACE_BEFORE_PUNCTUATION_RE.sub(r"\1", text)
    if not language.is_french:
        text = _SPACE_BEFORE_PUNCTUATION_EN_RE.sub(r"\1", text)
    return _LEADING_PUNCTUATION_RE.sub("", text)


def to_speakable(text: str, language: str = "en") -> str:
    """Turn LLM output into plain text that a TTS voice reads correctly.

    Removes Markdown (keeping link and emphasis text, dropping code blocks), SSML or
    HTML tags, and emoji. List items, headings and table rows become sentences. Numbers,
    amounts, percentages, ordinals, years, units, clock times and ISO dates are written
    as words in `language`: English and French fully, other languages through num2words
    with that code, and digits stay where num2words has no reading. Returns "" when
    nothing speakable is left.
    """
    resolved = _resolve_language(language)
    text = unicodedata.normalize("NFC", text)
    text = _remove_markup(text)
    text = _expand_abbreviations(text, resolved)
    text = _spell_numbers(text, resolved)
    text = _tidy(text, resolved)
    if not any(char.isalnum() for char in text):
        return ""
    return text
