"""Local skills: common commands handled without the language model, in English and French.

Skills.handle matches a transcript against each skill in turn: stop, repeat,
forget, timers, time, date, arithmetic. A skill matches only when the whole
transcript is its command (politeness words aside), so "what time is it in Tokyo"
goes to the language model. Both languages are matched whatever the persona's
language, and replies are in the persona's language.
"""

from __future__ import annotations

import datetime
import logging
import math
import re
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

from num2words import num2words
from pydantic import BaseModel

from assistant.phrases import phrase
from assistant.pipeline import LocalReply
from assistant.spoken_numbers import normalize, parse_duration, parse_number
from assistant.timers import Timer, TimerStore
from assistant.tools import Tool, ToolCall

if TYPE_CHECKING:
    from assistant.agent import Agent
    from assistant.config import Settings

_LOGGER = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]

MAX_TIMER_SECONDS = 24 * 3600
# Results above this get the number_too_large phrase instead of a long string of digits.
_MAX_RESULT = 10**15

# --- words around commands ----------------------------------------------------------------

_LEADING_POLITENESS = (
    "please", "ok", "okay", "hey", "so", "now", "alors", "bon", "dis moi", "dites moi", "dis", "dites",
    "s il te plait", "s il vous plait", "stp", "svp", "can you", "could you", "would you", "will you",
    "est ce que tu peux", "est ce que vous pouvez", "tu peux", "peux tu", "pourrais tu", "tu pourrais",
    "pouvez vous", "vous pouvez", "pourriez vous",
)
_TRAILING_POLITENESS = (
    "please", "thanks", "thank you", "merci", "s il te plait", "s il vous plait", "stp", "svp",
)
_LEADING_RE = re.compile(r"^(?:(?:" + "|".join(_LEADING_POLITENESS) + r")\s+)+")
_TRAILING_RE = re.compile(r"(?:\s+(?:" + "|".join(_TRAILING_POLITENESS) + r"))+$")


def _command_re(*alternatives: str, suffix: str = "") -> re.Pattern[str]:
    return re.compile(r"(?:" + "|".join(alternatives) + r")" + suffix)


_STOP_RE = _command_re(
    "stop", "stop it", "stop talking", "stop speaking", "be quiet", "quiet", "silence", "shut up", "hush",
    "shush", "enough", "that s enough", "that is enough", "never mind", "nevermind", "cancel", "cancel that",
    "arrete", "arrete toi", "arrete de parler", "arretez", "tais toi", "taisez vous", "chut", "ca suffit",
    "laisse tomber", "stoppe", "annule",
)
_REPEAT_RE = _command_re(
    "repeat", "repeat that", "repeat it", "repeat yourself", "repeat what you said", "say that again",
    "say it again", "say again", "come again", "what did you say", "what was that", "pardon", "pardon me",
    "sorry what", "repete", "repete ca", "repete le", "repete moi ca", "repeter", "repetez", "redis",
    "redis le", "redis moi ca", "redis ca", "tu as dit quoi", "qu est ce que tu as dit", "qu as tu dit",
    "quoi", "hein",
)
_FORGET_RE = _command_re(
    "forget", "forget that", "forget it", "forget everything", "forget all that", "forget our conversation",
    "forget this conversation", "forget the conversation", "new conversation", "start a new conversation",
    "let s start a new conversation", "start over", "let s start over", "reset the conversation",
    "clear the conversation", "oublie", "oublie ca", "oublie tout", "oublie tout ca", "oublie notre conversation",
    "oublie la conversation", "oublie cette conversation", "nouvelle conversation", "une nouvelle conversation",
    "commence une nouvelle conversation", "on commence une nouvelle conversation", "nouvelle discussion",
    "on recommence", "recommence", "recommencons", "on recommence a zero", "efface la conversation",
)
_NOW_SUFFIX = r"(?: right now| now| maintenant| actuellement)?"
_TIME_RE = _command_re(
    "what time is it", "what s the time", "what is the time", "whats the time", "what time it is",
    "tell me the time", "tell me what time it is", "do you have the time", "do you know what time it is",
    "what time do you have", "the time", "time", "current time", "the current time", "what is the current time",
    "what s the current time", "quelle heure est il", "quelle heure il est", "il est quelle heure",
    "quelle heure", "l heure", "donne moi l heure", "tu as l heure", "vous avez l heure", "c est quelle heure",
    "quelle heure est il donc", "quelle heure qu il est",
    suffix=_NOW_SUFFIX,
)
_TODAY_SUFFIX = r"(?: today| aujourd hui)?"
_DATE_RE = _command_re(
    "what s the date", "what is the date", "whats the date", "what is today s date", "what s today s date",
    "today s date", "the date", "date", "what day is it", "what day is today", "what day are we",
    "which day is it", "what day of the week is it", "what s today", "what is today", "what date is it",
    "quel jour sommes nous", "quel jour on est", "on est quel jour", "quel jour est on", "quel jour est il",
    "nous sommes quel jour", "quelle est la date", "quelle est la date d aujourd hui", "quelle date sommes nous",
    "quelle date on est", "on est le combien", "nous sommes le combien", "quelle date", "la date",
    "c est quoi la date", "quel jour c est", "quel jour est ce",
    suffix=_TODAY_SUFFIX,
)

# --- timers -----------------------------------------------------------------------------

_TIMER_NOUNS = {"timer", "timers", "minuteur", "minuteurs", "minuterie", "minuteries", "countdown", "rebours"}
_CANCEL_WORDS = {
    "cancel", "stop", "delete", "remove", "clear", "end", "kill", "off", "annule", "annuler", "annulez",
    "arrete", "arreter", "arretez", "stoppe", "stopper", "supprime", "supprimer", "supprimez", "enleve",
    "enlever", "efface", "effacer", "coupe", "couper",
}
_ALL_WORDS = {"all", "every", "tous", "toutes", "tout"}
_LIST_CUES = {
    "how", "left", "remaining", "remain", "list", "what", "which", "any", "check", "status", "combien",
    "reste", "restant", "restent", "liste", "lister", "quels", "quel", "quelles", "ou",
}
# Words that may surround a timer command without changing it.
_TIMER_FILLERS = {
    "a", "an", "the", "my", "for", "of", "on", "to", "me", "i", "you", "your", "set", "start", "create",
    "make", "put", "add", "new", "up", "turn", "can", "could", "would", "want", "need", "like", "d", "go",
    "with", "that", "this", "it", "is", "are", "there", "do", "have", "much", "long", "time", "s", "t",
    "till", "until", "un", "une", "le", "la", "les", "l", "mon", "ma", "mes", "de", "du", "des", "pour", "sur",
    "moi", "m", "mets", "met", "mettre", "lance", "lancer", "lancez", "demarre", "demarrer", "demarrez",
    "regle", "regler", "reglez", "programme", "programmer", "cree", "creer", "ajoute", "ajouter", "je",
    "veux", "voudrais", "tu", "peux", "pourrais", "vous", "pouvez", "il", "y", "a", "ai", "j", "est", "ce",
    "que", "en", "encore", "temps", "sont", "compte", "donne", "dis", "show", "tell", "please", "merci",
    "stp", "svp", "te", "plait", "qu",
}
_TIME_LEFT_RE = _command_re(
    "how much time is left", "how much time left", "how much time remains", "how long is left", "how long left",
    "combien de temps reste t il", "combien de temps il reste", "il reste combien de temps",
    "combien de temps reste il",
)

# --- arithmetic ---------------------------------------------------------------------------

_CALCULATION_PREFIX_RE = re.compile(
    r"^(?:what is|what s|whats|how much is|how much are|how much does|how much do|calculate|compute|"
    r"tell me|tell me what|what does|what do|combien font|combien fait|combien ca fait|combien egale|"
    r"combien egal|combien|calcule|calculez|que font|que fait|c est combien|ca fait combien|"
    r"quel est le resultat de|le resultat de)\s+"
)
_CALCULATION_SUFFIX_RE = re.compile(
    r"\s+(?:equals|equal|equal to|=|make|makes|egal|egale|font|fait|ca fait combien|c est combien|"
    r"ca fait quoi|ca fait|is)$"
)
_OPERATORS: dict[tuple[str, ...], str] = {
    ("plus",): "+", ("+",): "+",
    ("minus",): "-", ("moins",): "-", ("-",): "-",
    ("times",): "*", ("x",): "*", ("×",): "*", ("*",): "*", ("fois",): "*", ("multiplied", "by"): "*",
    ("multiplie", "par"): "*",
    ("divided", "by"): "/", ("divide", "by"): "/", ("over",): "/", ("/",): "/", ("÷",): "/",
    ("divise", "par"): "/", ("sur",): "/",
}
_OPERATOR_WORDS = {
    "en": {"+": "plus", "-": "minus", "*": "times", "/": "divided by"},
    "fr": {"+": "plus", "-": "moins", "*": "fois", "/": "divisé par"},
}

_WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
}
_MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"),
}
_DURATION_UNITS = {
    # (singular, plural) for 3600, 60 and 1 seconds
    "en": ((3600, "hour", "hours"), (60, "minute", "minutes"), (1, "second", "seconds")),
    "fr": ((3600, "heure", "heures"), (60, "minute", "minutes"), (1, "seconde", "secondes")),
}


class TimerArguments(BaseModel):
    hours: int
    minutes: int
    seconds: int


class CalculationArguments(BaseModel):
    left: float
    operator: Literal["+", "-", "*", "/"]
    right: float


class Skills:
    """The local skills, replying in `language` ("en" or "fr"; others get English phrases)."""

    def __init__(self, language: str, timers: TimerStore, clock: Clock = datetime.datetime.now) -> None:
        self.language = language
        self.timers = timers
        self._clock = clock

    def handle(self, text: str) -> LocalReply | None:
        """Return the local reply to `text`, or None when no skill matches and the LLM should answer."""
        tokens = normalize(text, self.language)
        command = _TRAILING_RE.sub("", _LEADING_RE.sub("", " ".join(tokens)))
        if not command:
            return None
        matchers: tuple[tuple[str, Callable[[str], LocalReply | None]], ...] = (
            ("stop", self._match_stop),
            ("repeat", self._match_repeat),
            ("forget", self._match_forget),
            ("timer", self._match_timer),
            ("time", self._match_time),
            ("date", self._match_date),
            ("calculation", self._match_calculation),
        )
        for name, match in matchers:
            reply = match(command)
            if reply is not None:
                _LOGGER.info("Local skill %s handled %r", name, text)
                return reply
        return None

    # --- commands ------------------------------------------------------------------------

    def _match_stop(self, command: str) -> LocalReply | None:
        return LocalReply(text="", action="stop") if _STOP_RE.fullmatch(command) else None

    def _match_repeat(self, command: str) -> LocalReply | None:
        if not _REPEAT_RE.fullmatch(command):
            return None
        return LocalReply(text=self._phrase("nothing_to_repeat"), action="repeat")

    def _match_forget(self, command: str) -> LocalReply | None:
        return self.forget() if _FORGET_RE.fullmatch(command) else None

    def _match_time(self, command: str) -> LocalReply | None:
        return self.tell_time() if _TIME_RE.fullmatch(command) else None

    def _match_date(self, command: str) -> LocalReply | None:
        return self.tell_date() if _DATE_RE.fullmatch(command) else None

    def _match_timer(self, command: str) -> LocalReply | None:
        words = command.split()
        if _TIME_LEFT_RE.fullmatch(command):
            return self.list_timers()
        if not _TIMER_NOUNS.intersection(words):
            return None
        duration_seconds, rest = _extract_duration(words, self.language)
        rest = [word for word in rest if word not in _TIMER_FILLERS and word not in _TIMER_NOUNS]

        if _CANCEL_WORDS.intersection(rest):
            if all(word in _CANCEL_WORDS or word in _ALL_WORDS for word in rest):
                return self.cancel_timers(duration_seconds, every=bool(_ALL_WORDS.intersection(rest)))
            return None
        if rest and all(word in _LIST_CUES for word in rest):
            return self.list_timers(duration_seconds)
        if not rest and duration_seconds is not None:
            return self.set_timer(duration_seconds)
        return None

    def _match_calculation(self, command: str) -> LocalReply | None:
        expression = _CALCULATION_SUFFIX_RE.sub("", _CALCULATION_PREFIX_RE.sub("", command))
        parsed = _parse_expression(expression.split(), self.language)
        return self.calculate(*parsed) if parsed is not None else None

    # --- skills, shared by the regex matchers and the tool calls --------------------------------

    def tell_time(self) -> LocalReply:
        now = self._clock()
        if self.language == "fr":
            if now.hour in (0, 12) and now.minute:
                spoken = f"{'minuit' if now.hour == 0 else 'midi'} {now.minute}"
            elif now.hour in (0, 12):
                spoken = "minuit" if now.hour == 0 else "midi"
            else:
                spoken = f"{now.hour} h {now.minute:02d}" if now.minute else f"{now.hour} h"
        else:
            hour = now.hour % 12 or 12
            suffix = "AM" if now.hour < 12 else "PM"
            spoken = f"{hour}:{now.minute:02d} {suffix}" if now.minute else f"{hour} {suffix}"
        return LocalReply(self._format("time", time=spoken))

    def tell_date(self) -> LocalReply:
        today = self._clock().date()
        language = "fr" if self.language == "fr" else "en"
        weekday = _WEEKDAYS[language][today.weekday()]
        month = _MONTHS[language][today.month - 1]
        if language == "fr":
            day = "1er" if today.day == 1 else str(today.day)
            spoken = f"{weekday} {day} {month} {today.year}"
        else:
            spoken = f"{weekday}, {month} {_english_ordinal(today.day)}, {today.year}"
        return LocalReply(self._format("date", date=spoken))

    def set_timer(self, duration_seconds: Fraction | int) -> LocalReply:
        seconds = round(duration_seconds)
        if seconds < 1:
            return LocalReply(self._phrase("timer_too_short"))
        if seconds > MAX_TIMER_SECONDS:
            return LocalReply(self._format("timer_too_long", duration=self.describe(MAX_TIMER_SECONDS)))
        timer = self.timers.add(seconds)
        return LocalReply(self._format("timer_set", duration=self.describe(timer.duration_seconds, True)))

    def cancel_timers(self, duration_seconds: Fraction | int | None = None, every: bool = False) -> LocalReply:
        """Cancel the timers of `duration_seconds`, or all with `every`, or the only one."""
        timers = self._select_timers(duration_seconds)
        if isinstance(timers, LocalReply):
            return timers
        if len(timers) > 1 and not every and duration_seconds is None:
            first = self.describe(timers[0].duration_seconds, True)
            return LocalReply(self._format("which_timer", count=len(timers), duration=first))
        removed = self.timers.remove([timer.id for timer in timers])
        if len(removed) == 1:
            duration = self.describe(removed[0].duration_seconds, True)
            return LocalReply(self._format("timer_cancelled", duration=duration))
        return LocalReply(self._format("timers_cancelled", count=len(removed)))

    def list_timers(self, duration_seconds: Fraction | int | None = None) -> LocalReply:
        """Tell the time left on the timers of `duration_seconds`, or on all of them."""
        timers = self._select_timers(duration_seconds)
        if isinstance(timers, LocalReply):
            return timers
        sentences = [self._format("timer_count", count=len(timers))] if len(timers) > 1 else []
        for timer in timers:
            remaining = math.ceil(max(0.0, self.timers.remaining_seconds(timer)))
            sentences.append(self._format(
                "timer_left",
                duration=self.describe(timer.duration_seconds, True),
                remaining=self.describe(_round_remaining(remaining)),
            ))
        return LocalReply(" ".join(sentences))

    def _select_timers(self, duration_seconds: Fraction | int | None) -> list[Timer] | LocalReply:
        """Return the timers of `duration_seconds` (all when None), or the reply saying there are none."""
        timers = self.timers.timers()
        if duration_seconds is not None:
            timers = [timer for timer in timers if timer.duration_seconds == round(duration_seconds)]
            if not timers:
                return LocalReply(self._format("no_timer_of", duration=self.describe(duration_seconds, True)))
        if not timers:
            return LocalReply(self._phrase("no_timers"))
        return timers

    def calculate(self, operands: list[Fraction], operators: list[str]) -> LocalReply:
        try:
            result = _evaluate(operands, operators)
        except ZeroDivisionError:
            return LocalReply(self._phrase("divide_by_zero"))
        if abs(result) > _MAX_RESULT:
            return LocalReply(self._phrase("number_too_large"))
        words = _OPERATOR_WORDS["fr" if self.language == "fr" else "en"]
        parts = [self._format_number(operands[0])]
        for operator, operand in zip(operators, operands[1:], strict=True):
            parts += [words[operator], self._format_number(operand)]
        text, exact = self._format_result(result)
        key = "calculation" if exact else "calculation_rounded"
        return LocalReply(self._format(key, expression=" ".join(parts), result=text))

    def forget(self) -> LocalReply:
        return LocalReply(text=self._phrase("forgotten"), action="forget")

    # --- tools for the language model --------------------------------------------------------

    def tools(self) -> list[Tool]:
        """Return the skills a model may call in the "grammar" tools mode.

        Stop and repeat stay regex-only: they act on the audio output, which the model
        does not control.
        """
        return [
            Tool("get_time", "Tell the current time.", examples=(("What time is it?", {}),)),
            Tool("get_date", "Tell today's date.", examples=(("What's the date today?", {}),)),
            Tool(
                "set_timer", "Start a countdown timer.", TimerArguments,
                examples=(("Set a timer for 2 minutes", {"hours": 0, "minutes": 2, "seconds": 0}),),
            ),
            Tool("cancel_timer", "Cancel the running timer.", examples=(("Cancel my timer", {}),)),
            Tool("list_timers", "Tell how much time the timers have left.",
                 examples=(("How long is left on my timer?", {}),)),
            Tool(
                "calculate", "Compute left operator right.", CalculationArguments,
                examples=(("What is 6 divided by 3?", {"left": 6, "operator": "/", "right": 3}),),
            ),
            Tool("forget_conversation", "Start a new conversation.", examples=(("Let's start over", {}),)),
        ]

    def run_tool(self, call: ToolCall) -> LocalReply:
        """Run the skill that `call` names, with its arguments checked; raise KeyError for an unknown tool."""
        _LOGGER.info("Tool call %s %s", call.name, call.arguments.model_dump_json())
        arguments = call.arguments
        if call.name == "get_time":
            return self.tell_time()
        if call.name == "get_date":
            return self.tell_date()
        if call.name == "set_timer" and isinstance(arguments, TimerArguments):
            parts = (arguments.hours, arguments.minutes, arguments.seconds)
            if any(part < 0 for part in parts):
                return LocalReply(self._phrase("timer_too_short"))
            # Each part is capped first, so that a 16-digit argument cannot make a huge product.
            hours, minutes, seconds = (min(part, MAX_TIMER_SECONDS + 1) for part in parts)
            return self.set_timer(hours * 3600 + minutes * 60 + seconds)
        if call.name == "cancel_timer":
            return self.cancel_timers()
        if call.name == "list_timers":
            return self.list_timers()
        if call.name == "calculate" and isinstance(arguments, CalculationArguments):
            if not (math.isfinite(arguments.left) and math.isfinite(arguments.right)):
                return LocalReply(self._phrase("number_too_large"))
            operands = [Fraction(str(arguments.left)), Fraction(str(arguments.right))]
            return self.calculate(operands, [arguments.operator])
        if call.name == "forget_conversation":
            return self.forget()
        raise KeyError(f"unknown tool {call.name!r}")

    # --- wording -----------------------------------------------------------------------------

    def describe(self, seconds: Fraction | int, adjective: bool = False) -> str:
        """Describe a duration in the persona's language (see describe_duration)."""
        return describe_duration(seconds, self.language, adjective)

    def timer_done_text(self, timer: Timer) -> str:
        return timer_done_text(timer, self.language)

    def _phrase(self, key: str) -> str:
        return phrase(key, self.language)

    def _format(self, key: str, **values: object) -> str:
        return _fill(self.language, key, **values)

    def _format_number(self, value: Fraction) -> str:
        return self._format_result(value)[0]

    def _format_result(self, value: Fraction) -> tuple[str, bool]:
        """Return `value` as digits in the persona's language, rounded to 3 decimals, and whether it is exact."""
        if value.denominator == 1:
            return str(value.numerator), True
        rounded = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("0.001"))
        exact = Fraction(rounded) == value
        text = format(rounded.normalize(), "f")
        if self.language == "fr":
            text = text.replace(".", ",")
        return text, exact


def start_skills(settings: Settings, timers: TimerStore, agent: Agent) -> Skills | None:
    """Return the skills selected by [llm] tools, or None for "off".

    With "grammar", `agent` also gets them as tools. Raises RuntimeError when the tool
    prompt does not fit the model's context.
    """
    if settings.llm.tools == "off":
        return None
    skills = Skills(settings.persona.language, timers)
    if settings.llm.tools == "grammar":
        agent.use_tools(skills)
    return skills


def timer_done_text(timer: Timer, language: str) -> str:
    """Return the announcement of `timer` falling due, in `language`."""
    return _fill(language, "timer_done", duration=describe_duration(timer.duration_seconds, language, True))


def _fill(language: str, key: str, **values: object) -> str:
    """Return the phrase `key` with `values` filled in; French elides "de une" to "d'une"."""
    text = phrase(key, language).format(**values)
    if language == "fr":
        text = re.sub(r"\bde (une?) ", r"d'\1 ", text)
    return text


def describe_duration(seconds: Fraction | int, language: str, adjective: bool = False) -> str:
    """Describe whole seconds as "1 hour, 5 minutes and 3 seconds" or "1 heure, 5 minutes et 3 secondes".

    With `adjective`, English gets the form that comes before a noun ("10 minute",
    "1 hour 30 minute"). French writes the amounts that end in "un" as feminine words
    ("une minute", "vingt et une secondes"), which the speakable stage cannot tell
    from digits; other amounts stay digits.
    """
    language = "fr" if language == "fr" else "en"
    remaining = round(seconds)
    parts = []
    for unit_seconds, singular, plural in _DURATION_UNITS[language]:
        amount, remaining = divmod(remaining, unit_seconds)
        if amount:
            parts.append((amount, singular, plural))
    if not parts:
        parts.append((0, *_DURATION_UNITS[language][2][1:]))

    if language == "en" and adjective:
        return " ".join(f"{amount} {singular}" for amount, singular, _ in parts)
    words = [f"{_amount(amount, language)} {singular if amount == 1 else plural}" for amount, singular, plural in parts]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + (" et " if language == "fr" else " and ") + words[-1]


def _amount(amount: int, language: str) -> str:
    if language == "fr" and amount % 10 == 1 and amount % 100 != 11:
        words = num2words(amount, lang="fr")
        return words[:-2] + "une" if words.endswith("un") else words
    return str(amount)


def _english_ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _round_remaining(seconds: int) -> int:
    """Round the time left to what is worth saying: whole minutes above 10 minutes."""
    if seconds > 600:
        return (seconds + 30) // 60 * 60
    return seconds


def _extract_duration(words: list[str], language: str) -> tuple[Fraction | None, list[str]]:
    """Find the first duration in `words`; return it and the words without it."""
    for start in range(len(words)):
        duration = parse_duration(words, start, language)
        if duration is not None:
            return duration.seconds, words[:start] + words[duration.end:]
    return None, words


def _parse_expression(words: list[str], language: str) -> tuple[list[Fraction], list[str]] | None:
    """Parse "operand (operator operand)+" covering all of `words`; None if they are anything else."""
    operands: list[Fraction] = []
    operators: list[str] = []
    index = 0
    while True:
        number = parse_number(words, index, language)
        if number is None:
            return None
        operands.append(number.value)
        index = number.end
        if index == len(words):
            break
        operator = _match_operator(words, index)
        if operator is None:
            return None
        symbol, index = operator
        operators.append(symbol)
    if not operators:
        return None
    return operands, operators


def _match_operator(words: list[str], index: int) -> tuple[str, int] | None:
    for phrase_words, symbol in _OPERATORS.items():
        if tuple(words[index : index + len(phrase_words)]) == phrase_words:
            return symbol, index + len(phrase_words)
    return None


def _evaluate(operands: list[Fraction], operators: list[str]) -> Fraction:
    """Evaluate with the usual precedence: * and / before + and -, left to right. Raises ZeroDivisionError."""
    terms = [operands[0]]
    signs: list[str] = []
    for operator, operand in zip(operators, operands[1:], strict=True):
        if operator == "*":
            terms[-1] *= operand
        elif operator == "/":
            terms[-1] /= operand
        else:
            signs.append(operator)
            terms.append(operand)
    result = terms[0]
    for sign, term in zip(signs, terms[1:], strict=True):
        result = result + term if sign == "+" else result - term
    return result
