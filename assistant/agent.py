"""The conversational agent: a GGUF chat model run by llama-cpp-python with the persona's prompt."""

from __future__ import annotations

import datetime
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from assistant.chat_format import (
    END_OF_TURN_MARKERS,
    ChatMessage,
    PromptFormat,
    choose_format,
    strip_stop_text,
)
from assistant.config import LlmSettings, PersonaSettings
from assistant.models import resolve_gguf
from assistant.phrases import language_name, phrase
from assistant.speakable import SentenceBuffer

_LOGGER = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]

_SENTENCE_END_MARKS = ".!?…。！？\"'”’)»"


# A finished sentence followed by one stray word with no end mark: small base models
# emit such a word where an instruction-tuned model would end its turn.
_STRAY_TAIL_RE = re.compile(r"^(\S+\s+.*[.!?…])\s*[^\s.!?…]+$", re.S)


def _trim_unfinished_tail(text: str) -> str:
    text = text.strip()
    match = _STRAY_TAIL_RE.match(text)
    return match.group(1) if match else text


def _partial_match_length(text: str, markers: Iterable[str]) -> int:
    """Return the length of the longest end of `text` that begins one of `markers`."""
    longest = 0
    for marker in markers:
        for length in range(min(len(marker) - 1, len(text)), longest, -1):
            if marker.startswith(text[-length:]):
                longest = length
                break
    return longest


class Agent:
    """One conversation with a local chat model. Not thread-safe: one reply at a time."""

    def __init__(
        self,
        settings: LlmSettings,
        persona: PersonaSettings,
        clock: Clock = datetime.datetime.now,
    ) -> None:
        from llama_cpp import Llama

        self.settings = settings
        self.persona = persona
        self._clock = clock
        self.model_path: Path = resolve_gguf(settings.model)
        try:
            self._llm = Llama(
                model_path=str(self.model_path),
                n_ctx=settings.context_tokens,
                n_threads=settings.threads or (os.cpu_count() or 1),
                seed=settings.seed if settings.seed >= 0 else 0xFFFFFFFF,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as error:
            raise RuntimeError(f"cannot load language model {self.model_path}: {error}") from error

        override = None if settings.chat_format == "auto" else settings.chat_format
        self.prompt_format: PromptFormat = choose_format(self._llm.metadata, override)
        self._end_token_ids = self._find_end_token_ids()
        self._stop_strings = (*END_OF_TURN_MARKERS, *self.prompt_format.stop, *settings.stop)
        self.history: list[ChatMessage] = []

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self._llm.metadata)

    def system_prompt(self) -> str:
        now = self._clock()
        return self.persona.system_prompt.format(
            name=self.persona.name,
            date=now.strftime("%A %d %B %Y"),
            time=now.strftime("%H:%M"),
            language=language_name(self.persona.language),
            max_sentences=self.persona.max_sentences,
        )

    def build_prompt(self, user_text: str) -> str:
        """Render the conversation, dropping the oldest exchanges until it fits the context."""
        preamble = [ChatMessage("system", self.system_prompt())]
        for example in self.persona.examples:
            preamble += [ChatMessage("user", example.user), ChatMessage("assistant", example.assistant)]
        while True:
            prompt = self.prompt_format.render([*preamble, *self.history, ChatMessage("user", user_text)])
            if not self.history or self.count_tokens(prompt) + self.settings.max_tokens <= self.settings.context_tokens:
                return prompt
            del self.history[:2]

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def reply_sentences(self, user_text: str, should_stop: Callable[[], bool] = lambda: False) -> Iterator[str]:
        """Generate the reply to `user_text`, yielding each sentence as soon as it is complete.

        Generation stops at the end of the model's turn, at a configured stop string,
        after the persona's maximum number of sentences, after `max_tokens`, or as soon
        as `should_stop()` returns True. An unfinished last sentence is dropped unless
        it is the whole reply.
        """
        sentences: list[str] = []
        buffer = SentenceBuffer()
        try:
            for piece in self._generate(self.build_prompt(user_text), should_stop):
                for sentence in buffer.feed(piece):
                    sentences.append(sentence)
                    yield sentence
                    if len(sentences) >= self.persona.max_sentences:
                        return
            rest = _trim_unfinished_tail(buffer.flush() or "")
            if rest and (not sentences or rest[-1] in _SENTENCE_END_MARKS):
                sentences.append(rest)
                yield rest
        finally:
            self._remember(user_text, " ".join(sentences))

    def _generate(self, prompt: str, should_stop: Callable[[], bool]) -> Iterator[str]:
        """Stream the model's text until its turn ends or a stop string appears after the first words."""
        from llama_cpp import StoppingCriteriaList

        stream = self._llm.create_completion(
            prompt,
            max_tokens=self.settings.max_tokens,
            temperature=self.settings.temperature,
            top_p=self.settings.top_p,
            top_k=self.settings.top_k,
            repeat_penalty=self.settings.repeat_penalty,
            stop=list(self.prompt_format.stop),
            stopping_criteria=StoppingCriteriaList([self._at_end_of_turn]),
            stream=True,
        )
        text = ""
        emitted = 0
        try:
            for chunk in stream:
                if should_stop():
                    return
                text += chunk["choices"][0]["text"]
                end = self._reply_end(text)
                if end is not None:
                    if end > emitted:
                        yield text[emitted:end]
                    return
                # Hold back a tail that may be the start of a stop string.
                safe = len(text) - _partial_match_length(text, self._stop_strings)
                if safe > emitted:
                    yield text[emitted:safe]
                    emitted = safe
            if len(text) > emitted:
                yield text[emitted:]
        finally:
            stream.close()

    def _reply_end(self, text: str) -> int | None:
        """Return where the reply ends in `text`: at a turn marker or a stop string after the first words."""
        ends = []
        cleaned = strip_stop_text(text, self.prompt_format)
        if len(cleaned) < len(text):
            ends.append(len(cleaned))
        first_word = len(text) - len(text.lstrip())
        for stop in self.settings.stop:
            index = text.find(stop, first_word)
            if index >= 0:
                ends.append(index)
        return min(ends) if ends else None

    def _at_end_of_turn(self, input_ids: Any, logits: Any) -> bool:
        return len(input_ids) > 0 and int(input_ids[-1]) in self._end_token_ids

    def _find_end_token_ids(self) -> set[int]:
        """Token ids that end the model's turn: EOS and single-token turn markers."""
        ids = {self._llm.token_eos()}
        for marker in (*END_OF_TURN_MARKERS, *self.prompt_format.stop):
            tokens = self._llm.tokenize(marker.encode("utf-8"), add_bos=False, special=True)
            if len(tokens) == 1:
                ids.add(tokens[0])
        return ids

    def reply(self, user_text: str) -> str:
        text = " ".join(self.reply_sentences(user_text)).strip()
        return text or phrase("no_answer", self.persona.language)

    def reset(self) -> None:
        """Forget the conversation."""
        self.history.clear()

    def _remember(self, user_text: str, reply_text: str) -> None:
        self.history.append(ChatMessage("user", user_text))
        self.history.append(ChatMessage("assistant", reply_text or phrase("no_answer", self.persona.language)))
