"""Canned phrases the daemon speaks itself, in the persona's language."""

from __future__ import annotations

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "no_answer": "Sorry, I have no answer to that.",
        "not_understood": "Sorry, I didn't catch that.",
        "error": "Sorry, something went wrong. Please try again.",
        # Local skills. Durations and numbers are filled in as digits, which the
        # speakable text stage spells out (French amounts ending in "un" come as
        # feminine words: "une minute").
        "time": "It's {time}.",
        "date": "Today is {date}.",
        "calculation": "{expression} is {result}.",
        "calculation_rounded": "{expression} is about {result}.",
        "divide_by_zero": "You can't divide by zero.",
        "number_too_large": "That number is too large for me.",
        "timer_set": "OK, {duration} timer started.",
        "timer_done": "Your {duration} timer is done.",
        "timer_too_short": "A timer must last at least one second.",
        "timer_too_long": "A timer can last at most {duration}.",
        "timer_left": "Your {duration} timer has {remaining} left.",
        "timer_count": "You have {count} timers.",
        "no_timers": "You have no timers.",
        "no_timer_of": "You have no {duration} timer.",
        "timer_cancelled": "OK, your {duration} timer is cancelled.",
        "timers_cancelled": "OK, {count} timers are cancelled.",
        "which_timer": "You have {count} timers. Say cancel all timers, or which one to cancel, "
        "for example the {duration} timer.",
        "nothing_to_repeat": "I haven't said anything yet.",
        "forgotten": "OK, let's start a new conversation.",
    },
    "fr": {
        "no_answer": "Désolé, je n'ai pas de réponse à cela.",
        "not_understood": "Désolé, je n'ai pas compris.",
        "error": "Désolé, une erreur s'est produite. Veuillez réessayer.",
        "time": "Il est {time}.",
        "date": "Nous sommes le {date}.",
        "calculation": "{expression} font {result}.",
        "calculation_rounded": "{expression} font environ {result}.",
        "divide_by_zero": "On ne peut pas diviser par zéro.",
        "number_too_large": "Ce nombre est trop grand pour moi.",
        "timer_set": "D'accord, minuteur de {duration} lancé.",
        "timer_done": "Votre minuteur de {duration} est terminé.",
        "timer_too_short": "Un minuteur doit durer au moins une seconde.",
        "timer_too_long": "Un minuteur dure au plus {duration}.",
        "timer_left": "Il reste {remaining} sur votre minuteur de {duration}.",
        "timer_count": "Vous avez {count} minuteurs.",
        "no_timers": "Vous n'avez aucun minuteur.",
        "no_timer_of": "Vous n'avez pas de minuteur de {duration}.",
        "timer_cancelled": "D'accord, votre minuteur de {duration} est annulé.",
        "timers_cancelled": "D'accord, {count} minuteurs sont annulés.",
        "which_timer": "Vous avez {count} minuteurs. Dites annule tous les minuteurs, ou lequel annuler, "
        "par exemple le minuteur de {duration}.",
        "nothing_to_repeat": "Je n'ai encore rien dit.",
        "forgotten": "D'accord, commençons une nouvelle conversation.",
    },
}

LANGUAGE_NAMES: dict[str, dict[str, str]] = {
    "en": {"en": "English", "fr": "French"},
    "fr": {"en": "anglais", "fr": "français"},
}


def phrase(key: str, language: str) -> str:
    """Return the canned phrase `key` in `language`, falling back to English."""
    return PHRASES.get(language, PHRASES["en"])[key]


def language_name(language: str) -> str:
    """Return the name of `language` written in that language, or the code itself."""
    return LANGUAGE_NAMES.get(language, {}).get(language, language)
