"""Canned phrases the daemon speaks itself, in the persona's language."""

from __future__ import annotations

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "no_answer": "Sorry, I have no answer to that.",
        "not_understood": "Sorry, I didn't catch that.",
        "error": "Sorry, something went wrong. Please try again.",
    },
    "fr": {
        "no_answer": "Désolé, je n'ai pas de réponse à cela.",
        "not_understood": "Désolé, je n'ai pas compris.",
        "error": "Désolé, une erreur s'est produite. Veuillez réessayer.",
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
