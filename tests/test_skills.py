"""Local skills: which transcripts they handle, and the exact replies, in English and French."""

from __future__ import annotations

import datetime
import statistics
import time

import pytest

from assistant.config import Settings
from assistant.pipeline import LocalReply
from assistant.skills import (
    CalculationArguments,
    Skills,
    TimerArguments,
    describe_duration,
    start_skills,
    timer_done_text,
)
from assistant.timers import Timer, TimerStore
from assistant.tools import NoArguments, ToolCall, ToolChooser

THURSDAY_AFTERNOON = datetime.datetime(2025, 12, 4, 14, 5)


class FakeClocks:
    """A wall clock and a monotonic clock that move only when a test advances them."""

    def __init__(self) -> None:
        self.wall = 1_764_856_000.0
        self.monotonic = 1_000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.monotonic += seconds


@pytest.fixture
def clocks() -> FakeClocks:
    return FakeClocks()


@pytest.fixture
def store(tmp_path, clocks) -> TimerStore:
    return TimerStore(tmp_path / "timers.json", wall_clock=lambda: clocks.wall, monotonic=lambda: clocks.monotonic)


def skills_for(language: str, store: TimerStore, now: datetime.datetime = THURSDAY_AFTERNOON) -> Skills:
    return Skills(language, store, clock=lambda: now)


ENGLISH_TABLE = [
    ("What time is it?", "It's 2:05 PM.", None),
    ("what's the time", "It's 2:05 PM.", None),
    ("Can you tell me what time it is, please?", "It's 2:05 PM.", None),
    ("Quelle heure est-il ?", "It's 2:05 PM.", None),
    ("What's the date today?", "Today is Thursday, December 4th, 2025.", None),
    ("Quel jour sommes-nous ?", "Today is Thursday, December 4th, 2025.", None),
    ("Stop.", "", "stop"),
    ("Be quiet!", "", "stop"),
    ("Arrête.", "", "stop"),
    ("Tais-toi !", "", "stop"),
    ("Repeat that.", "I haven't said anything yet.", "repeat"),
    ("Could you say that again?", "I haven't said anything yet.", "repeat"),
    ("Répète.", "I haven't said anything yet.", "repeat"),
    ("Forget that.", "OK, let's start a new conversation.", "forget"),
    ("New conversation.", "OK, let's start a new conversation.", "forget"),
    ("Oublie.", "OK, let's start a new conversation.", "forget"),
    ("Nouvelle conversation.", "OK, let's start a new conversation.", "forget"),
    ("What is 12 times 7?", "12 times 7 is 84.", None),
    ("What's twelve times seven?", "12 times 7 is 84.", None),
    ("12 x 7", "12 times 7 is 84.", None),
    ("Combien font 3 plus 4 ?", "3 plus 4 is 7.", None),
    ("what is 2 plus 3 times 4", "2 plus 3 times 4 is 14.", None),
    ("What is 10 divided by 4?", "10 divided by 4 is 2.5.", None),
    ("What is 10 divided by 3?", "10 divided by 3 is about 3.333.", None),
    ("What is 1 divided by 0?", "You can't divide by zero.", None),
    ("What is 3 minus 5?", "3 minus 5 is -2.", None),
    ("what is minus three plus four", "-3 plus 4 is 1.", None),
    ("How much is one hundred and five times two?", "105 times 2 is 210.", None),
    ("What's 2.5 times 4?", "2.5 times 4 is 10.", None),
]

FRENCH_TABLE = [
    ("Quelle heure est-il ?", "Il est 14 h 05.", None),
    ("Il est quelle heure ?", "Il est 14 h 05.", None),
    ("Dis-moi l'heure, s'il te plaît.", "Il est 14 h 05.", None),
    ("What time is it?", "Il est 14 h 05.", None),
    ("Quel jour sommes-nous ?", "Nous sommes le jeudi 4 décembre 2025.", None),
    ("On est quel jour aujourd'hui ?", "Nous sommes le jeudi 4 décembre 2025.", None),
    ("Arrête.", "", "stop"),
    ("Tais-toi !", "", "stop"),
    ("Stop.", "", "stop"),
    ("Répète.", "Je n'ai encore rien dit.", "repeat"),
    ("Tu peux répéter ?", "Je n'ai encore rien dit.", "repeat"),
    ("Oublie tout.", "D'accord, commençons une nouvelle conversation.", "forget"),
    ("Nouvelle conversation.", "D'accord, commençons une nouvelle conversation.", "forget"),
    ("Combien font 3 plus 4 ?", "3 plus 4 font 7.", None),
    ("Combien font trois plus quatre ?", "3 plus 4 font 7.", None),
    ("Combien fait 12 fois 7 ?", "12 fois 7 font 84.", None),
    ("Combien font quatre-vingt-dix-sept moins soixante et onze ?", "97 moins 71 font 26.", None),
    ("Calcule 10 divisé par 4.", "10 divisé par 4 font 2,5.", None),
    ("Combien font dix divisé par trois ?", "10 divisé par 3 font environ 3,333.", None),
    ("Combien font 2,5 fois 4 ?", "2,5 fois 4 font 10.", None),
    ("Combien font 5 divisé par 0 ?", "On ne peut pas diviser par zéro.", None),
    ("What is 12 times 7?", "12 fois 7 font 84.", None),
]

NOT_LOCAL = [
    "What is the capital of France?",
    "What time is it in Tokyo?",
    "Tell me a joke.",
    "Stop the war.",
    "Quelle est la capitale de l'Italie ?",
    "How do I set a timer on my oven?",
    "Set a timer.",
    "Minuteur.",
    "What is love?",
    "What is 12?",
    "Repeat after me: hello.",
    "Date de naissance de Victor Hugo ?",
    "",
    "...",
]


@pytest.mark.parametrize(("text", "reply", "action"), ENGLISH_TABLE)
def test_english_persona_table(store, text, reply, action):
    assert skills_for("en", store).handle(text) == LocalReply(reply, action)


@pytest.mark.parametrize(("text", "reply", "action"), FRENCH_TABLE)
def test_french_persona_table(store, text, reply, action):
    assert skills_for("fr", store).handle(text) == LocalReply(reply, action)


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("text", NOT_LOCAL)
def test_other_requests_go_to_the_model(store, language, text):
    assert skills_for(language, store).handle(text) is None


@pytest.mark.parametrize(
    ("now", "language", "reply"),
    [
        (datetime.datetime(2025, 12, 4, 9, 0), "en", "It's 9 AM."),
        (datetime.datetime(2025, 12, 4, 0, 30), "en", "It's 12:30 AM."),
        (datetime.datetime(2025, 12, 4, 12, 0), "en", "It's 12 PM."),
        (datetime.datetime(2025, 12, 4, 9, 0), "fr", "Il est 9 h."),
        (datetime.datetime(2025, 12, 4, 0, 30), "fr", "Il est minuit 30."),
        (datetime.datetime(2025, 12, 4, 12, 0), "fr", "Il est midi."),
        (datetime.datetime(2025, 12, 4, 12, 5), "fr", "Il est midi 5."),
    ],
)
def test_time_wording(store, now, language, reply):
    assert skills_for(language, store, now).tell_time().text == reply


@pytest.mark.parametrize(
    ("day", "language", "reply"),
    [
        (datetime.datetime(2025, 12, 1), "fr", "Nous sommes le lundi 1er décembre 2025."),
        (datetime.datetime(2025, 12, 1), "en", "Today is Monday, December 1st, 2025."),
        (datetime.datetime(2025, 12, 2), "en", "Today is Tuesday, December 2nd, 2025."),
        (datetime.datetime(2025, 12, 3), "en", "Today is Wednesday, December 3rd, 2025."),
        (datetime.datetime(2025, 12, 11), "en", "Today is Thursday, December 11th, 2025."),
        (datetime.datetime(2025, 12, 22), "en", "Today is Monday, December 22nd, 2025."),
        (datetime.datetime(2026, 8, 15), "fr", "Nous sommes le samedi 15 août 2026."),
    ],
)
def test_date_wording(store, day, language, reply):
    assert skills_for(language, store, day).tell_date().text == reply


# --- timers -----------------------------------------------------------------------------


def test_english_timer_conversation(store, clocks):
    skills = skills_for("en", store)

    assert skills.handle("Set a timer for 10 minutes.").text == "OK, 10 minute timer started."
    assert [timer.duration_seconds for timer in store.timers()] == [600]

    clocks.advance(48)
    assert skills.handle("How much time is left on my timer?").text == (
        "Your 10 minute timer has 9 minutes and 12 seconds left."
    )

    assert skills.handle("Start a 5 minute timer").text == "OK, 5 minute timer started."
    assert skills.handle("Cancel the timer").text == (
        "You have 2 timers. Say cancel all timers, or which one to cancel, for example the 5 minute timer."
    )
    assert len(store.timers()) == 2

    assert skills.handle("Cancel the 5 minute timer.").text == "OK, your 5 minute timer is cancelled."
    assert [timer.duration_seconds for timer in store.timers()] == [600]

    assert skills.handle("Cancel the 3 minute timer.").text == "You have no 3 minute timer."
    assert skills.handle("Cancel all timers.").text == "OK, your 10 minute timer is cancelled."
    assert skills.handle("What timers do I have?").text == "You have no timers."
    assert store.timers() == []


def test_french_timer_conversation(store, clocks):
    skills = skills_for("fr", store)

    assert skills.handle("Minuteur 10 minutes.").text == "D'accord, minuteur de 10 minutes lancé."
    assert skills.handle("Mets un minuteur de cinq minutes.").text == "D'accord, minuteur de 5 minutes lancé."
    assert skills.handle("Lance un minuteur d'une minute.").text == "D'accord, minuteur d'une minute lancé."
    assert sorted(timer.duration_seconds for timer in store.timers()) == [60, 300, 600]

    clocks.advance(30)
    assert skills.handle("Combien de temps reste-t-il sur le minuteur ?").text == (
        "Vous avez 3 minuteurs. "
        "Il reste 30 secondes sur votre minuteur d'une minute. "
        "Il reste 4 minutes et 30 secondes sur votre minuteur de 5 minutes. "
        "Il reste 9 minutes et 30 secondes sur votre minuteur de 10 minutes."
    )
    assert skills.handle("Annule le minuteur de 5 minutes.").text == "D'accord, votre minuteur de 5 minutes est annulé."
    assert skills.handle("Arrête tous les minuteurs.").text == "D'accord, 2 minuteurs sont annulés."
    assert skills.handle("Il reste combien de temps ?").text == "Vous n'avez aucun minuteur."


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("set a timer for an hour and a half", 5400),
        ("Timer for 90 seconds please", 90),
        ("Start a countdown of two minutes", 120),
        ("10 minute timer", 600),
        ("Mets un minuteur d'une heure et demie", 5400),
        ("Minuteur de trois quarts d'heure", 2700),
        ("Règle un minuteur sur 1 h 30", 5400),
        ("Compte à rebours de 30 secondes", 30),
    ],
)
def test_timer_durations(store, text, seconds):
    reply = skills_for("en", store).handle(text)
    assert reply is not None
    assert [timer.duration_seconds for timer in store.timers()] == [seconds]


def test_timer_limits(store):
    skills = skills_for("en", store)
    assert skills.handle("Set a timer for 25 hours").text == "A timer can last at most 24 hours."
    assert skills.handle("Set a timer for 0 seconds").text == "A timer must last at least one second."
    assert store.timers() == []


def test_remaining_time_rounds_to_minutes_above_ten(store, clocks):
    skills = skills_for("en", store)
    skills.handle("Set a timer for 1 hour")
    clocks.advance(100)
    assert skills.handle("How much time is left?").text == "Your 1 hour timer has 58 minutes left."


@pytest.mark.parametrize(
    ("seconds", "language", "text"),
    [
        (600, "en", "Your 10 minute timer is done."),
        (5400, "en", "Your 1 hour 30 minute timer is done."),
        (61, "en", "Your 1 minute 1 second timer is done."),
        (600, "fr", "Votre minuteur de 10 minutes est terminé."),
        (60, "fr", "Votre minuteur d'une minute est terminé."),
        (5400, "fr", "Votre minuteur d'une heure et 30 minutes est terminé."),
        (1260, "fr", "Votre minuteur de vingt et une minutes est terminé."),
    ],
)
def test_timer_done_text(seconds, language, text):
    timer = Timer(id=1, duration_seconds=seconds, created=0.0, due=float(seconds))
    assert timer_done_text(timer, language) == text


@pytest.mark.parametrize(
    ("seconds", "language", "text"),
    [
        (3725, "en", "1 hour, 2 minutes and 5 seconds"),
        (1, "en", "1 second"),
        (0, "en", "0 seconds"),
        (3725, "fr", "une heure, 2 minutes et 5 secondes"),
        (31, "fr", "trente et une secondes"),
        (11, "fr", "11 secondes"),
    ],
)
def test_describe_duration(seconds, language, text):
    assert describe_duration(seconds, language) == text


# --- tools --------------------------------------------------------------------------------


def test_tool_set_timer_runs_the_skill(store):
    skills = skills_for("en", store)
    reply = skills.run_tool(ToolCall("set_timer", TimerArguments(hours=0, minutes=3, seconds=0)))
    assert reply == LocalReply("OK, 3 minute timer started.")
    assert [timer.duration_seconds for timer in store.timers()] == [180]


@pytest.mark.parametrize(
    ("arguments", "reply"),
    [
        (TimerArguments(hours=0, minutes=-3, seconds=0), "A timer must last at least one second."),
        (TimerArguments(hours=10**15, minutes=0, seconds=0), "A timer can last at most 24 hours."),
        (TimerArguments(hours=0, minutes=0, seconds=0), "A timer must last at least one second."),
    ],
)
def test_tool_timer_arguments_checked(store, arguments, reply):
    assert skills_for("en", store).run_tool(ToolCall("set_timer", arguments)).text == reply
    assert store.timers() == []


@pytest.mark.parametrize(
    ("arguments", "reply"),
    [
        (CalculationArguments(left=6, operator="*", right=7), "6 times 7 is 42."),
        (CalculationArguments(left=2.5, operator="-", right=4), "2.5 minus 4 is -1.5."),
        (CalculationArguments(left=1, operator="/", right=0), "You can't divide by zero."),
        (CalculationArguments(left=float("inf"), operator="+", right=1), "That number is too large for me."),
        (CalculationArguments(left=1e300, operator="*", right=1e300), "That number is too large for me."),
    ],
)
def test_tool_calculate(store, arguments, reply):
    assert skills_for("en", store).run_tool(ToolCall("calculate", arguments)).text == reply


def test_tool_simple_calls(store):
    skills = skills_for("fr", store)
    assert skills.run_tool(ToolCall("get_time", NoArguments())).text == "Il est 14 h 05."
    assert skills.run_tool(ToolCall("get_date", NoArguments())).text == "Nous sommes le jeudi 4 décembre 2025."
    assert skills.run_tool(ToolCall("list_timers", NoArguments())).text == "Vous n'avez aucun minuteur."
    assert skills.run_tool(ToolCall("cancel_timer", NoArguments())).text == "Vous n'avez aucun minuteur."
    assert skills.run_tool(ToolCall("forget_conversation", NoArguments())).action == "forget"


def test_unknown_tool_raises(store):
    with pytest.raises(KeyError):
        skills_for("en", store).run_tool(ToolCall("launch_rocket", NoArguments()))


def test_tool_schema_builds_a_grammar(store):
    chooser = ToolChooser(skills_for("en", store).tools())
    assert chooser.grammar() is not None
    assert chooser.parse('{"tool": "set_timer", "arguments": {"hours": 0, "minutes": 2, "seconds": 0}}') == ToolCall(
        "set_timer", TimerArguments(hours=0, minutes=2, seconds=0)
    )
    assert chooser.parse('{"tool": "none", "arguments": {}}').name == "none"


@pytest.mark.parametrize(
    "text",
    [
        '{"tool": "set_timer", "arguments": {}}',
        '{"tool": "get_time", "arguments": {"x": 1}}',
        '{"tool": "fly", "arguments": {}}',
        '{"tool": "none"}',
        '{"tool": "none", "arguments": {}',
    ],
)
def test_tool_call_outside_schema_rejected(store, text):
    chooser = ToolChooser(skills_for("en", store).tools())
    with pytest.raises(ValueError):
        chooser.parse(text)


class AgentWithoutTools:
    """Stands in for the agent where start_skills must not give it tools."""

    def use_tools(self, toolbox) -> None:
        raise AssertionError("use_tools called")


@pytest.mark.parametrize(("mode", "expected"), [("off", type(None)), ("local", Skills)])
def test_start_skills_modes(store, mode, expected):
    settings = Settings()
    settings.llm.tools = mode
    assert isinstance(start_skills(settings, store, AgentWithoutTools()), expected)


@pytest.mark.models
def test_skills_faster_than_model(store):
    from assistant.agent import Agent

    settings = Settings()
    agent = Agent(settings.llm, settings.persona)
    skills = skills_for("en", store)
    skill_seconds = []
    for text, _, _ in ENGLISH_TABLE:
        started = time.perf_counter()
        skills.handle(text)
        skill_seconds.append(time.perf_counter() - started)
    started = time.perf_counter()
    agent.reply("What time is it?")
    model_seconds = time.perf_counter() - started

    print(f"skill median {statistics.median(skill_seconds) * 1000:.2f} ms, "
          f"max {max(skill_seconds) * 1000:.2f} ms; model reply {model_seconds * 1000:.0f} ms")
    assert max(skill_seconds) < model_seconds / 10


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('[llm]\ntools = "magic"\n', "llm.tools = 'magic'"),
        ("[llm]\nconversation_idle_seconds = -1\n", "llm.conversation_idle_seconds = -1"),
    ],
)
def test_config_rejects_invalid_skill_settings(tmp_path, table, problem):
    from assistant.config import ConfigError, load_settings

    path = tmp_path / "config.toml"
    path.write_text(table)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(problem)
