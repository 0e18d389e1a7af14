"""The conversational agent: a GGUF chat model run by llama-cpp-python with the persona's prompt."""

from __future__ import annotations

import contextlib
import datetime
import gc
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from assistant.chat_format import (
    END_OF_TURN_MARKERS,
    ChatMessage,
    PromptFormat,
    choose_format,
    strip_stop_text,
)
from assistant.config import LlmSettings, PersonaSettings
from assistant.models import EMBEDDED_GGUF, resolve_gguf
from assistant.phrases import language_name, phrase
from assistant.speakable import SentenceBuffer, split_sentences
from assistant.tools import CALL_MAX_TOKENS, NO_TOOL, NoArguments, Tool, ToolCall, ToolChooser

_LOGGER = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]

_USER_TEXT_SENTINEL = "\u2063USER\u2063"
# Tokens that end an utterance when they follow the user's words.
_UTTERANCE_END_TEXTS = (".", "?", "!", " ?", " !", "\n", "...", "…", "?\n", ".\n", "!\n", "。", "？", "！")

# Tokens that carry the utterance on: a comma, a colon, a conjunction.
_CONTINUATION_TEXTS = (",", ";", ":", " -", " and", " or", " but", " et", " ou", " mais")


@dataclass(frozen=True)
class TurnEstimate:
    """Next-token probabilities after the user's words so far."""

    #: Probability that a sentence end or a line break comes next.
    end: float
    #: Probability that a comma, colon or conjunction comes next.
    continuation: float

    def finished(self, min_end: float) -> bool:
        """Return True when an end is likely, and at least as likely as a continuation."""
        return self.end >= min_end and self.end >= self.continuation


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


def _set_abort_callback(llm: Any, should_abort: Callable[[], bool] | None) -> Any:
    """Make llama.cpp poll `should_abort` during each decode, prompt evaluation included; None removes it.

    The CPU backend calls it between graph nodes (about 440 times per decode call
    for Gemma 3 270M with llama-cpp-python 0.3.36), so a stop request ends a long
    prompt evaluation within milliseconds instead of after it. Returns the ctypes callback, which must stay
    referenced while it is set.
    """
    import llama_cpp

    if should_abort is None:
        callback = llama_cpp.ggml_abort_callback(0)
    else:
        callback = llama_cpp.ggml_abort_callback(lambda _data: should_abort())
    llama_cpp.llama_set_abort_callback(llm.ctx, callback, None)
    return callback


class ToolReply(Protocol):
    """The result of a tool call: the text to speak, and an optional action ("forget")."""

    @property
    def text(self) -> str: ...

    @property
    def action(self) -> str | None: ...


class ToolBox(Protocol):
    """The tools the model may call, such as assistant.skills.Skills."""

    def tools(self) -> list[Tool]: ...

    def run_tool(self, call: ToolCall) -> ToolReply: ...


@contextlib.contextmanager
def _abortable(llm: Any, should_stop: Callable[[], bool]) -> Iterator[None]:
    """Let `should_stop` abort llama.cpp's decoding inside the block; an aborted call just ends it."""
    callback = _set_abort_callback(llm, should_stop)
    try:
        yield
    except RuntimeError:
        # llama-cpp-python raises "llama_decode returned 2" when the abort callback stopped a decode.
        if not should_stop():
            raise
    finally:
        _set_abort_callback(llm, None)
        del callback


class Agent:
    """One conversation with a local chat model. Not thread-safe: one reply at a time.

    The conversation keeps its exchanges until it has been idle for
    `settings.conversation_idle_seconds` (measured on `monotonic`), or until reset().
    `llm` is an already loaded llama_cpp.Llama to use in place of loading
    `settings.model`.
    """

    def __init__(
        self,
        settings: LlmSettings,
        persona: PersonaSettings,
        clock: Clock = datetime.datetime.now,
        monotonic: Callable[[], float] = time.monotonic,
        llm: Any | None = None,
    ) -> None:
        self.settings = settings
        self.persona = persona
        self._clock = clock
        self._monotonic = monotonic
        self.model_path: Path = resolve_gguf(settings.model)
        self._llm = llm if llm is not None else self._load(settings)

        override = None if settings.chat_format == "auto" else settings.chat_format
        self.prompt_format: PromptFormat = choose_format(self._llm.metadata, override)
        self._end_token_ids = self._find_end_token_ids()
        self._utterance_end_token_ids = self._single_token_ids(_UTTERANCE_END_TEXTS)
        self._continuation_token_ids = self._single_token_ids(_CONTINUATION_TEXTS)
        self._stop_strings = (*END_OF_TURN_MARKERS, *self.prompt_format.stop, *settings.stop)
        self.history: list[ChatMessage] = []
        self._last_exchange_end: float | None = None
        self._toolbox: ToolBox | None = None
        self._tool_chooser: ToolChooser | None = None
        self._tool_llm: Any | None = None

    def _load(self, settings: LlmSettings) -> Any:
        from llama_cpp import Llama

        try:
            return Llama(
                model_path=str(self.model_path),
                n_ctx=settings.context_tokens,
                n_threads=settings.threads or (os.cpu_count() or 1),
                seed=settings.seed if settings.seed >= 0 else 0xFFFFFFFF,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as error:
            raise RuntimeError(
                f"cannot load language model {self.model_path}: {error}; the file may be truncated or corrupt, "
                f"or its architecture unknown to this llama.cpp, so download it again or set [llm] model "
                f"to '{EMBEDDED_GGUF}'"
            ) from error

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
        """Render the conversation so that it leaves `max_tokens` free in the context.

        Counted with the model's own tokenizer. The oldest exchanges are dropped first,
        then the persona's examples, then the end of the user's words; the system
        prompt always stays. A conversation idle for longer than
        conversation_idle_seconds starts anew.
        """
        self._expire_idle_conversation()
        system = [ChatMessage("system", self.system_prompt())]
        examples: list[ChatMessage] = []
        for example in self.persona.examples:
            examples += [ChatMessage("user", example.user), ChatMessage("assistant", example.assistant)]
        while True:
            prompt = self.prompt_format.render([*system, *examples, *self.history, ChatMessage("user", user_text)])
            excess = self.count_tokens(prompt) + self.settings.max_tokens - self.settings.context_tokens
            if excess <= 0:
                return prompt
            if self.history:
                _LOGGER.debug("Dropping the oldest exchange to fit %d context tokens", self.settings.context_tokens)
                del self.history[:2]
            elif examples:
                _LOGGER.warning("Dropping a persona example to fit %d context tokens", self.settings.context_tokens)
                del examples[:2]
            else:
                shortened = self._shorten(user_text, excess)
                return self.prompt_format.render([*system, ChatMessage("user", shortened)])

    def _expire_idle_conversation(self) -> None:
        if not self.history or self._last_exchange_end is None:
            return
        idle_seconds = self._monotonic() - self._last_exchange_end
        if idle_seconds > self.settings.conversation_idle_seconds:
            _LOGGER.info(
                "Conversation idle for %.0f s (conversation_idle_seconds = %g): starting a new one",
                idle_seconds, self.settings.conversation_idle_seconds,
            )
            self.reset()

    def _shorten(self, text: str, excess_tokens: int) -> str:
        """Drop the end of `text` so that the prompt loses `excess_tokens` tokens."""
        tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        keep = max(0, len(tokens) - excess_tokens - 1)
        if keep == 0:
            raise ValueError(
                f"the persona's prompt and examples leave no room for the user's words in "
                f"{self.settings.context_tokens} tokens; raise [llm] context_tokens or shorten the persona"
            )
        _LOGGER.warning("User text of %d tokens cut to %d to fit the context", len(tokens), keep)
        return self._llm.detokenize(tokens[:keep]).decode("utf-8", errors="ignore")

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def prompt_before_user_text(self) -> str:
        """Return the next turn's prompt up to where the user's words go."""
        prompt = self.build_prompt(_USER_TEXT_SENTINEL)
        return prompt[: prompt.index(_USER_TEXT_SENTINEL)]

    def prime(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Evaluate the persona's prompt now, so that the next reply only evaluates the user's words.

        llama-cpp-python keeps the key/value cache of the last prompt and reuses its
        longest common prefix, so the next turn starts from this point.
        """
        started = time.perf_counter()
        with _abortable(self._llm, should_stop):
            self._llm.create_completion(self.prompt_before_user_text(), max_tokens=1, temperature=0.0)
        # llama-cpp-python 0.3.36 leaves each call's sampler buffers (about 3 MB with this
        # 262k-token vocabulary) in reference cycles that only the cyclic collector frees.
        # That collector seldom runs here, so prime(), called once per turn, runs it.
        gc.collect()
        _LOGGER.debug("Prompt prefix evaluated in %.2f s", time.perf_counter() - started)

    def estimate_end_of_turn(self, text: str, should_stop: Callable[[], bool] = lambda: False) -> TurnEstimate:
        """Estimate whether `text` is a finished utterance, from the model's next-token distribution.

        The model reads the words in the user's turn, without the final punctuation
        Whisper adds. After "what time is it" a question mark is likely; after "my
        fellow Americans" a comma is. The prompt is the next reply's prompt, so its
        evaluation is reused by the reply.
        """
        words = text.strip().rstrip(".?!…。？！ ")
        if not words:
            return TurnEstimate(end=0.0, continuation=0.0)
        captured: list[np.ndarray] = []

        def capture(input_ids: Any, scores: np.ndarray) -> np.ndarray:
            if not captured:
                captured.append(np.array(scores, dtype=np.float64))
            return scores

        from llama_cpp import LogitsProcessorList

        with _abortable(self._llm, should_stop):
            self._llm.create_completion(
                self.prompt_before_user_text() + words,
                max_tokens=1,
                temperature=0.0,
                logits_processor=LogitsProcessorList([capture]),
            )
        if not captured:
            return TurnEstimate(end=0.0, continuation=0.0)
        logits = captured[0]
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        return TurnEstimate(
            end=float(probabilities[self._utterance_end_token_ids].sum()),
            continuation=float(probabilities[self._continuation_token_ids].sum()),
        )

    def _single_token_ids(self, texts: Iterable[str]) -> np.ndarray:
        ids = set()
        for text in texts:
            tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
            if len(tokens) == 1:
                ids.add(tokens[0])
        return np.array(sorted(ids), dtype=np.int64)

    def reply_sentences(
        self,
        user_text: str,
        should_stop: Callable[[], bool] = lambda: False,
        on_first_text: Callable[[], None] | None = None,
    ) -> Iterator[str]:
        """Generate the reply to `user_text`, yielding each sentence as soon as it is complete.

        Generation stops at the end of the model's turn, at a configured stop string,
        after the persona's maximum number of sentences, after `max_tokens`, or as soon
        as `should_stop()` returns True. An unfinished last sentence is dropped unless
        it is the whole reply. `on_first_text` is called when the first text arrives.

        With tools (see use_tools), the model first chooses a tool; a chosen tool's
        reply replaces the free reply.
        """
        if self._tool_chooser is not None and not should_stop():
            call = self.choose_tool(user_text, should_stop)
            if should_stop():
                return
            if call.name != NO_TOOL:
                yield from self._reply_with_tool(user_text, call, on_first_text)
                return

        sentences: list[str] = []
        buffer = SentenceBuffer()
        try:
            for piece in self._generate(self.build_prompt(user_text), should_stop):
                if on_first_text is not None and piece.strip():
                    on_first_text()
                    on_first_text = None
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
        with _abortable(self._llm, should_stop):
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
        self._last_exchange_end = self._monotonic()

    # --- tool calls ------------------------------------------------------------------------

    def use_tools(self, toolbox: ToolBox) -> None:
        """Let the model call `toolbox`'s tools before each reply ([llm] tools = "grammar").

        Tool calls run in a second llama.cpp context on the same model file, whose
        weights llama.cpp maps into memory once for both. The tool prompt, evaluated
        here, then stays in that context's cache between turns, and the chat context
        keeps its own. Raises RuntimeError when the tool prompt does not fit the
        context or the second context cannot be created.
        """
        chooser = ToolChooser(toolbox.tools(), no_tool_examples=("Who wrote Hamlet?", "Raconte-moi une blague"))
        prompt = self.prompt_format.render(chooser.messages(_USER_TEXT_SENTINEL))
        needed = self.count_tokens(prompt) + CALL_MAX_TOKENS
        if needed > self.settings.context_tokens:
            raise RuntimeError(
                f"the tool prompt needs {needed} tokens but [llm] context_tokens is {self.settings.context_tokens}; "
                "raise context_tokens or set [llm] tools to \"local\""
            )
        tool_llm = self._load(self.settings)
        started = time.perf_counter()
        prefix = prompt[: prompt.index(_USER_TEXT_SENTINEL)]
        tool_llm.create_completion(prefix, max_tokens=1, temperature=0.0)
        _LOGGER.info("Tool prompt of %d tokens evaluated in %.2f s", needed - CALL_MAX_TOKENS,
                     time.perf_counter() - started)
        self._toolbox = toolbox
        self._tool_chooser = chooser
        self._tool_llm = tool_llm

    def choose_tool(self, user_text: str, should_stop: Callable[[], bool] = lambda: False) -> ToolCall:
        """Ask the model which tool fulfils `user_text`; see generate_tool_call.

        Returns a NO_TOOL call when the model chose none, when `should_stop()`
        aborted the call, or when its call does not parse: the grammar rules out
        malformed JSON, but a call cut at CALL_MAX_TOKENS is incomplete.
        """
        started = time.perf_counter()
        text = self.generate_tool_call(user_text, should_stop)
        assert self._tool_chooser is not None
        if text is None:
            return ToolCall(NO_TOOL, NoArguments())
        try:
            call = self._tool_chooser.parse(text)
        except ValueError as error:
            _LOGGER.error("Tool call %r does not match the schema (%s); answering in words", text, error)
            return ToolCall(NO_TOOL, NoArguments())
        _LOGGER.info("Tool choice %s in %.2f s", text.strip(), time.perf_counter() - started)
        return call

    def generate_tool_call(self, user_text: str, should_stop: Callable[[], bool] = lambda: False) -> str | None:
        """Return the model's JSON tool call for `user_text`, sampled greedily under the call grammar.

        Returns None when `should_stop()` aborted the generation.
        """
        if self._tool_chooser is None or self._tool_llm is None:
            raise RuntimeError("no tools: call use_tools first")
        completion = None
        with _abortable(self._tool_llm, should_stop):
            completion = self._tool_llm.create_completion(
                self.prompt_format.render(self._tool_chooser.messages(user_text)),
                max_tokens=CALL_MAX_TOKENS,
                temperature=0.0,
                repeat_penalty=1.0,
                grammar=self._tool_chooser.grammar(),
            )
        return None if completion is None else completion["choices"][0]["text"]

    @property
    def tool_chooser(self) -> ToolChooser | None:
        """The schema and prompt of tool calls, once use_tools was called."""
        return self._tool_chooser

    def _reply_with_tool(
        self, user_text: str, call: ToolCall, on_first_text: Callable[[], None] | None
    ) -> Iterator[str]:
        assert self._toolbox is not None
        reply = self._toolbox.run_tool(call)
        if on_first_text is not None:
            on_first_text()
        if reply.action == "forget":
            self.reset()
        yield from split_sentences(reply.text)
        if reply.action != "forget":
            self._remember(user_text, reply.text)
