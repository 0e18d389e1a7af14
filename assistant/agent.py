"""The conversational agent: a GGUF chat model run by llama-cpp-python with the persona's prompt."""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from assistant.chat_format import ChatMessage, PromptFormat, choose_format, strip_stop_text
from assistant.config import LlmSettings, PersonaSettings
from assistant.models import resolve_gguf
from assistant.phrases import language_name, phrase
from assistant.speakable import SentenceBuffer

_LOGGER = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]


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
        system = ChatMessage("system", self.system_prompt())
        while True:
            prompt = self.prompt_format.render([system, *self.history, ChatMessage("user", user_text)])
            if not self.history or self.count_tokens(prompt) + self.settings.max_tokens <= self.settings.context_tokens:
                return prompt
            del self.history[:2]

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def reply_sentences(self, user_text: str) -> Iterator[str]:
        """Generate the reply to `user_text`, yielding each sentence as soon as it is complete.

        Generation stops at the end of the model's turn, after the persona's maximum
        number of sentences, or after `max_tokens`, whichever comes first.
        """
        prompt = self.build_prompt(user_text)
        stream = self._llm.create_completion(
            prompt,
            max_tokens=self.settings.max_tokens,
            temperature=self.settings.temperature,
            top_p=self.settings.top_p,
            top_k=self.settings.top_k,
            repeat_penalty=self.settings.repeat_penalty,
            stop=list(self.prompt_format.stop),
            stream=True,
        )

        sentences: list[str] = []
        buffer = SentenceBuffer()
        raw = ""
        try:
            for chunk in stream:
                piece = chunk["choices"][0]["text"]
                raw += piece
                cleaned = strip_stop_text(raw, self.prompt_format)
                ended = cleaned != raw
                if ended:
                    # A turn marker slipped past the stop list: keep only what precedes it.
                    piece = piece[: max(0, len(piece) - (len(raw) - len(cleaned)))]
                for sentence in buffer.feed(piece):
                    sentences.append(sentence)
                    yield sentence
                    if len(sentences) >= self.persona.max_sentences:
                        return
                if ended:
                    break
            rest = buffer.flush()
            if rest and len(sentences) < self.persona.max_sentences:
                sentences.append(rest)
                yield rest
        finally:
            stream.close()
            self._remember(user_text, " ".join(sentences))

    def reply(self, user_text: str) -> str:
        text = " ".join(self.reply_sentences(user_text)).strip()
        return text or phrase("no_answer", self.persona.language)

    def reset(self) -> None:
        """Forget the conversation."""
        self.history.clear()

    def _remember(self, user_text: str, reply_text: str) -> None:
        self.history.append(ChatMessage("user", user_text))
        self.history.append(ChatMessage("assistant", reply_text or phrase("no_answer", self.persona.language)))
