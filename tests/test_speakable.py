"""Tests for sentence splitting, streaming sentences and text normalisation for speech."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.speakable import SentenceBuffer, split_sentences, to_speakable

# --------------------------------------------------------------------------------------
# to_speakable
# --------------------------------------------------------------------------------------

ENGLISH_CASES = [
    ("$500", "five hundred dollars"),
    ("$1", "one dollar"),
    ("$3.50", "three dollars and fifty cents"),
    ("$0.99", "ninety-nine cents"),
    ("$1.5 million", "one point five million dollars"),
    ("$5k", "five thousand dollars"),
    ("£3.50", "three pounds and fifty pence"),
    ("5 €", "five euros"),
    ("5€", "five euros"),
    ("10 EUR", "ten euros"),
    ("1920", "nineteen twenty"),
    ("Born in 1920.", "Born in nineteen twenty."),
    ("In 2024 we moved.", "In twenty twenty-four we moved."),
    ("the 1920s and the 80s", "the nineteen twenties and the eighties"),
    ("3.5 kg", "three point five kilograms"),
    ("1 kg", "one kilogram"),
    ("20 km/h", "twenty kilometers per hour"),
    ("-5 °C", "minus five degrees Celsius"),
    ("25 min", "twenty-five minutes"),
    ("3.14", "three point one four"),
    ("1,000,000 people", "one million people"),
    ("007", "zero zero seven"),
    ("**bold**", "bold"),
    ("*it* and _this_", "it and this"),
    ("`code`", "code"),
    ("# Title", "Title"),
    ("[the docs](https://example.com)", "the docs"),
    ("- item", "item"),
    ("* item", "item"),
    ("1. item", "item"),
    ("Dr. Smith arrived.", "Doctor Smith arrived."),
    ("e.g. this", "for example this"),
    ("apples, etc. Then pears", "apples, et cetera. Then pears"),
    ("10:30", "ten thirty"),
    ("10:05", "ten oh five"),
    ("10:00", "ten o'clock"),
    ("2024-03-05", "March fifth, twenty twenty-four"),
    ("1st", "first"),
    ("2nd and 3rd", "second and third"),
    ("50%", "fifty percent"),
    ("v1.2.3", "version one point two point three"),
    ("4K", "four K"),
    ("COVID-19", "COVID-nineteen"),
    ("🎉🎉", ""),
    ("Hello 👋 world!", "Hello world!"),
    ("<speak>hi</speak>", "hi"),
    ("Done<|im_end|>", "Done"),
    ("...", ""),
    ("!?!", ""),
    ("", ""),
    ("buttons", "buttons"),
    ("lighten", "lighten"),
    ("mutton", "mutton"),
    ("a 10 ton truck", "a ten ton truck"),
    ("mp3 file", "mp3 file"),
    ("snake_case_name", "snake_case_name"),
    ("x < y", "x < y"),
    ("Line one\nwraps here.", "Line one wraps here."),
]

FRENCH_CASES = [
    ("500 $", "cinq cents dollars"),
    ("5 €", "cinq euros"),
    ("1 €", "un euro"),
    ("3,50 €", "trois euros et cinquante centimes"),
    ("1 000 €", "mille euros"),
    ("2 millions €", "deux millions d'euros"),
    ("1 000 000 €", "un million d'euros"),
    ("1920", "mille neuf cent vingt"),
    ("3.5 kg", "trois virgule cinq kilogrammes"),
    ("3,5 kg", "trois virgule cinq kilogrammes"),
    ("1,5 kg", "un virgule cinq kilogramme"),
    ("3,14", "trois virgule quatorze"),
    ("3,05", "trois virgule zéro cinq"),
    ("**gras**", "gras"),
    ("- article", "article"),
    ("M. Dupont est arrivé.", "Monsieur Dupont est arrivé."),
    ("p. ex. ceci", "par exemple ceci"),
    ("10:30", "dix heures trente"),
    ("14h30", "quatorze heures trente"),
    ("1:01", "une heure une"),
    ("21 h", "vingt et une heures"),
    ("1er", "premier"),
    ("1re", "première"),
    ("2e", "deuxième"),
    ("50 %", "cinquante pour cent"),
    ("2024-03-01", "premier mars deux mille vingt-quatre"),
    ("🎉", ""),
    ("<speak>salut</speak>", "salut"),
    ("Bonjour !", "Bonjour !"),
    ("boutons", "boutons"),
    ("mouton", "mouton"),
]


@pytest.mark.parametrize(("text", "expected"), ENGLISH_CASES)
def test_to_speakable_english(text, expected):
    assert to_speakable(text, "en") == expected


@pytest.mark.parametrize(("text", "expected"), FRENCH_CASES)
def test_to_speakable_french(text, expected):
    assert to_speakable(text, "fr") == expected


def test_to_speakable_default_english():
    assert to_speakable("3.5 kg") == "three point five kilograms"


def test_to_speakable_regional_codes():
    assert to_speakable("5 €", "fr-CA") == "cinq euros"
    assert to_speakable("5 €", "en_US") == "five euros"


def test_to_speakable_other_language():
    assert to_speakable("1920", "de") == "neunzehnhundertzwanzig"
    assert to_speakable("3.5", "de") == "drei Komma fünf"
    assert to_speakable("-5", "de") == "minus fünf"


def test_to_speakable_unknown_language():
    assert to_speakable("**3.5 kg**", "xx") == "3.5 kg"


def test_to_speakable_list_items():
    text = "Here is the plan:\n- buy milk\n- bake 2 cakes\n1. eat\n\nDone"
    assert to_speakable(text) == "Here is the plan: buy milk. bake two cakes. eat. Done"


def test_to_speakable_code_block_dropped():
    text = "Run this:\n```python\nprint(1)\n```\nThen wait."
    assert to_speakable(text) == "Run this: Then wait."


def test_to_speakable_lone_code_fence_dropped():
    assert to_speakable("```bash\nls -la") == "ls -la"


def test_to_speakable_recipe():
    text = "## Steps\n1. Mix **flour**\n2. Bake at 180 °C for 25 min\nEnjoy 😋"
    expected = (
        "Steps. Mix flour. Bake at one hundred and eighty degrees Celsius "
        "for twenty-five minutes. Enjoy"
    )
    assert to_speakable(text) == expected


def test_to_speakable_table_rows():
    text = "| Name | Age |\n|---|---|\n| Ann | 30 |"
    assert to_speakable(text) == "Name, Age. Ann, thirty"


def test_to_speakable_long_text():
    sentence = "The **quick** fox, born in 1920, paid $3.50 for 2.5 kg of apples at 10:30. "
    text = (sentence * 80)[:5000]
    result = to_speakable(text)
    assert result.startswith(
        "The quick fox, born in nineteen twenty, paid three dollars and fifty cents "
        "for two point five kilograms of apples at ten thirty. The quick fox"
    )
    assert "**" not in result
    assert not any(char.isdigit() for char in result)


def test_to_speakable_collapses_whitespace():
    assert to_speakable("  a \t b\n\n\n c  ") == "a b. c"


def test_to_speakable_control_characters():
    assert to_speakable("a\x00b\x07c") == "a b c"


# --------------------------------------------------------------------------------------
# split_sentences
# --------------------------------------------------------------------------------------

SPLIT_CASES = [
    ("Hello there. How are you?", ["Hello there.", "How are you?"]),
    ("Dr. Smith arrived. He sat down.", ["Dr. Smith arrived.", "He sat down."]),
    ("Mr. and Mrs. Jones came. St. Louis is far.", ["Mr. and Mrs. Jones came.", "St. Louis is far."]),
    ("Use e.g. this one. Or i.e. that.", ["Use e.g. this one.", "Or i.e. that."]),
    ("Apples, pears, etc. and more. Next.", ["Apples, pears, etc. and more.", "Next."]),
    ("Apples, pears, etc. Next one.", ["Apples, pears, etc.", "Next one."]),
    ("Cats vs. Dogs is old. Yes.", ["Cats vs. Dogs is old.", "Yes."]),
    ("It costs 3.5 dollars. Wow!", ["It costs 3.5 dollars.", "Wow!"]),
    ("We left at 10:30. Then we ate.", ["We left at 10:30.", "Then we ate."]),
    ("Wait... Then what?", ["Wait...", "Then what?"]),
    ("Well… maybe not.", ["Well… maybe not."]),
    ("J. F. Kennedy was president. Yes.", ["J. F. Kennedy was president.", "Yes."]),
    ("M. Dupont et Mme Martin sont là. Bonjour !", ["M. Dupont et Mme Martin sont là.", "Bonjour !"]),
    ("Il y a p. ex. des pommes. Et des poires.", ["Il y a p. ex. des pommes.", "Et des poires."]),
    ('He said "Hi." Then left.', ['He said "Hi."', "Then left."]),
    ("Really?! Yes!", ["Really?!", "Yes!"]),
    ("Is it 5? yes it is", ["Is it 5?", "yes it is"]),
    ("Version 2.0 is out. Good.", ["Version 2.0 is out.", "Good."]),
    ("Visit example.com today. Bye.", ["Visit example.com today.", "Bye."]),
    ("In 2020. 2021 was better.", ["In 2020.", "2021 was better."]),
    ("The answer is no. Try again.", ["The answer is no.", "Try again."]),
    ("It is 5 mm. Then stop.", ["It is 5 mm.", "Then stop."]),
    ("Options:\n- one\n- two\n1. three\n2. four", ["Options:", "- one", "- two", "1. three", "2. four"]),
    ("# Heading\nText here", ["# Heading", "Text here"]),
    ("Title\n\nBody text", ["Title", "Body text"]),
    ("Line one\nwraps here. End.", ["Line one\nwraps here.", "End."]),
    ("Hello.\nworld", ["Hello.", "world"]),
    ("你好。再见！好", ["你好。", "再见！", "好"]),
    ("No end mark", ["No end mark"]),
    ("", []),
    ("   \n  ", []),
]


@pytest.mark.parametrize(("text", "expected"), SPLIT_CASES)
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


# --------------------------------------------------------------------------------------
# SentenceBuffer
# --------------------------------------------------------------------------------------


def stream(pieces: list[str]) -> list[str]:
    """Feed `pieces` to a fresh SentenceBuffer and return all sentences, flush included."""
    buffer = SentenceBuffer()
    sentences = []
    for piece in pieces:
        sentences.extend(buffer.feed(piece))
    rest = buffer.flush()
    if rest is not None:
        sentences.append(rest)
    return sentences


STREAM_TEXT = (
    "Dr. Smith paid 3.5 dollars at 10:30. e.g. this works! "
    "Is it done? Yes… Then:\n- one\n- two\n\nJ. F. Kennedy spoke. Bye."
)


def test_buffer_char_by_char_matches_split():
    assert stream(list(STREAM_TEXT)) == split_sentences(STREAM_TEXT)


def test_buffer_split_inside_decimal():
    pieces = ["It costs 3.", "5 dollars. Next", " one."]
    assert stream(pieces) == ["It costs 3.5 dollars.", "Next one."]


def test_buffer_split_inside_abbreviation():
    pieces = ["We met Dr", ". ", "Smith today. He", " waved."]
    assert stream(pieces) == ["We met Dr. Smith today.", "He waved."]


def test_buffer_emits_when_next_starts():
    buffer = SentenceBuffer()
    assert buffer.feed("Hello there.") == []
    assert buffer.feed(" ") == []
    assert buffer.feed("How") == ["Hello there."]
    assert buffer.feed(" are you?") == []
    assert buffer.flush() == "How are you?"


def test_buffer_newline_after_mark():
    buffer = SentenceBuffer()
    assert buffer.feed("Done.\n") == ["Done."]


def test_buffer_list_items_stream():
    buffer = SentenceBuffer()
    assert buffer.feed("Options:\n") == []
    assert buffer.feed("- one\n") == ["Options:", "- one"]
    assert buffer.feed("- two") == []
    assert buffer.flush() == "- two"


def test_buffer_flush_empty_returns_none():
    buffer = SentenceBuffer()
    assert buffer.flush() is None
    buffer.feed("  \n ")
    assert buffer.flush() is None


def test_buffer_reusable_after_flush():
    buffer = SentenceBuffer()
    buffer.feed("First text")
    assert buffer.flush() == "First text"
    assert buffer.feed("Second. Third") == ["Second."]
    assert buffer.flush() == "Third"


def test_buffer_emoji_and_non_latin_intact():
    text = "Bravo 🎉👍🏽! Привет, мир. こんにちは。世界！ Ça va ? Très bien."
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    sentences = stream(pieces)
    assert sentences == split_sentences(text)
    assert sentences == [
        "Bravo 🎉👍🏽!",
        "Привет, мир.",
        "こんにちは。",
        "世界！",
        "Ça va ?",
        "Très bien.",
    ]


def test_buffer_long_single_line():
    text = "word " * 2000 + "end. Next"
    assert stream([text[i : i + 7] for i in range(0, len(text), 7)]) == split_sentences(text)


# --------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------

# Text drawn mostly from the characters that the splitter and the normaliser react to.
tricky_text = st.lists(
    st.sampled_from(
        list("aZé .,!?…:;-*_#`[]()<>|\n\t0123456789$€£%°。！？\"'")
        + ["🎉", "Dr.", "e.g.", "3.5", "```", "\n- ", "1. ", "10:30"]
    ),
    max_size=40,
).map("".join)


def non_space(text: str) -> str:
    return "".join(text.split())


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_to_speakable_never_raises(text):
    for language in ("en", "fr", "de", "xx"):
        assert isinstance(to_speakable(text, language), str)


@settings(max_examples=300, deadline=None)
@given(tricky_text)
def test_to_speakable_markup_never_raises(text):
    for language in ("en", "fr"):
        result = to_speakable(text, language)
        assert result == result.strip()
        assert "  " not in result


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), tricky_text))
def test_split_sentences_keeps_all_text(text):
    sentences = split_sentences(text)
    assert non_space("".join(sentences)) == non_space(text)
    assert all(sentence == sentence.strip() and sentence for sentence in sentences)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=120), tricky_text), st.lists(st.integers(0, 120), max_size=10))
def test_buffer_matches_split_any_pieces(text, cuts):
    bounds = sorted({min(cut, len(text)) for cut in cuts})
    pieces = [text[start:end] for start, end in zip([0, *bounds], [*bounds, len(text)])]
    assert stream(pieces) == split_sentences(text)
