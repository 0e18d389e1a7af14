"""Prompt formats that turn a chat into the text prompt of a chat-tuned model.

Each format renders a conversation up to the header of the assistant's next turn, so
that the model writes the reply, and lists the stop strings that end that reply. The
prompt never starts with the BOS token text because llama.cpp's tokenizer adds BOS
itself when the GGUF sets `tokenizer.ggml.add_bos_token`. Inner special tokens, such as
`</s><s>` in Llama 2 prompts, are plain text here, so the prompt must be tokenized with
special-token parsing enabled (`Llama.tokenize(..., special=True)` in llama-cpp-python).

The built-in formats follow the reference layouts of each model family. Gemma, ChatML
and Llama 3 match llama-cpp-python 0.3.36's formats of those names. Its "llama-2" and
"mistral-instruct" differ from the reference layouts, so those two follow Meta's and
Mistral's layouts, documented where they are defined.
"""

from __future__ import annotations

import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

logger = logging.getLogger(__name__)

FORMAT_NAMES = ("gemma", "chatml", "llama-2", "mistral-instruct", "llama-3", "phi-3")

# Markers that end a model's turn in the supported families. `strip_stop_text` cuts
# generated text at any of them, whatever the active format.
END_OF_TURN_MARKERS = (
    "<|im_end|>",
    "<|eot_id|>",
    "<end_of_turn>",
    "</s>",
    "<|end|>",
    "<|endoftext|>",
)

# Strings in a Jinja chat template that mark the end of a turn or the start of the next
# user turn. A template that contains the key gets the values as stop strings.
_TEMPLATE_STOP_HINTS: dict[str, tuple[str, ...]] = {
    "<end_of_turn>": ("<end_of_turn>",),
    "<start_of_turn>": ("<start_of_turn>user",),
    "<|im_end|>": ("<|im_end|>",),
    "<|im_start|>": ("<|im_start|>user",),
    "<|eot_id|>": ("<|eot_id|>",),
    "<|eom_id|>": ("<|eom_id|>",),
    "<|start_header_id|>": ("<|start_header_id|>user",),
    "<|end|>": ("<|end|>",),
    "<|user|>": ("<|user|>",),
    "<|endoftext|>": ("<|endoftext|>",),
    "[INST]": ("[INST]",),
}

# BOS and EOS texts guessed from a template's markers when the caller does not know
# the model's own tokens.
_TEMPLATE_SPECIAL_TOKENS: tuple[tuple[str, str, str], ...] = (
    ("<start_of_turn>", "<bos>", "<eos>"),
    ("<|start_header_id|>", "<|begin_of_text|>", "<|eot_id|>"),
    ("<|im_start|>", "", "<|im_end|>"),
)

_LLAMA_3_NAME_RE = re.compile(r"llama[-_ ]?3", re.IGNORECASE)
_MISTRAL_NAME_RE = re.compile(r"mi[sx]tral", re.IGNORECASE)


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation."""

    role: str  # "system", "user" or "assistant"
    content: str


class PromptFormat(ABC):
    """The prompt layout of one model family."""

    name: str
    stop: tuple[str, ...]  # strings that end the model's turn

    @abstractmethod
    def render(self, messages: Sequence[ChatMessage]) -> str:
        """Render the conversation up to the header of the assistant's next turn.

        The prompt does not start with the BOS token text.
        """


# --------------------------------------------------------------------------------------
# Conversation normalisation
# --------------------------------------------------------------------------------------


def _validate_roles(messages: Sequence[ChatMessage]) -> None:
    for index, message in enumerate(messages):
        if message.role not in ("system", "user", "assistant"):
            raise ValueError(
                f"message {index} has invalid role {message.role!r}; "
                "expected 'system', 'user' or 'assistant'"
            )


def _normalize(messages: Sequence[ChatMessage]) -> tuple[str, list[ChatMessage]]:
    """Return the system prompt and the user and assistant turns of a conversation.

    All system messages are joined into one system prompt, whatever their position.
    Content is stripped, and consecutive messages of one role are merged with a blank
    line, so the turns alternate.
    """
    _validate_roles(messages)
    system_parts = [m.content.strip() for m in messages if m.role == "system"]
    system = "\n\n".join(part for part in system_parts if part)

    turns: list[ChatMessage] = []
    for message in messages:
        if message.role == "system":
            continue
        content = message.content.strip()
        if turns and turns[-1].role == message.role:
            merged = "\n\n".join(part for part in (turns[-1].content, content) if part)
            turns[-1] = ChatMessage(message.role, merged)
        else:
            turns.append(ChatMessage(message.role, content))
    return system, turns


def _start_with_user(turns: list[ChatMessage]) -> list[ChatMessage]:
    """Prepend an empty user turn unless the conversation starts with a user turn.

    Formats in which every assistant turn follows an instruction use this for
    conversations that are empty or start with the assistant.
    """
    if turns and turns[0].role == "user":
        return turns
    return [ChatMessage("user", ""), *turns]


def _fold_system(system: str, turns: list[ChatMessage]) -> list[ChatMessage]:
    """Prepend the system prompt to the first user turn, for formats without a system role.

    The folded text is the system prompt, a blank line, then the user text. When the
    conversation has no user turn before the first assistant turn, the system prompt
    becomes a user turn of its own at the start.
    """
    if not system:
        return turns
    if not turns or turns[0].role != "user":
        return [ChatMessage("user", system), *turns]
    first = turns[0]
    content = f"{system}\n\n{first.content}" if first.content else system
    return [ChatMessage("user", content), *turns[1:]]


# --------------------------------------------------------------------------------------
# Built-in formats
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _TurnFormat(PromptFormat):
    """A format in which every turn is a role header, the content and an end marker."""

    name: str
    stop: tuple[str, ...]
    headers: Mapping[str, str]  # role -> text before the content
    turn_end: str
    has_system_role: bool

    def render(self, messages: Sequence[ChatMessage]) -> str:
        system, turns = _normalize(messages)
        if self.has_system_role and system:
            turns = [ChatMessage("system", system), *turns]
        elif system:
            turns = _fold_system(system, turns)

        parts = [f"{self.headers[t.role]}{t.content}{self.turn_end}" for t in turns]
        parts.append(self.headers["assistant"])
        return "".join(parts)


@dataclass(frozen=True, eq=False)
class _InstFormat(PromptFormat):
    """A format of `[INST] ... [/INST]` exchanges, as in Llama 2 and Mistral Instruct.

    Llama 2 puts the system prompt in a `<<SYS>>` block of the first instruction.
    Mistral Instruct has no system role, so the system prompt is folded into the first
    instruction as plain text.
    """

    name: str
    stop: tuple[str, ...]
    system_block: str | None  # a format string with {system}, or None for no system role
    exchange_separator: str  # between a reply's "</s>" and the next "[INST]"
    reply_prefix: str  # between "[/INST]" and the assistant's text
    reply_suffix: str  # after the assistant's text, ending with "</s>"

    def render(self, messages: Sequence[ChatMessage]) -> str:
        system, turns = _normalize(messages)
        turns = _start_with_user(turns)
        if system and self.system_block is None:
            turns = _fold_system(system, turns)
        elif system:
            block = self.system_block.format(system=system)
            turns = [ChatMessage("user", block + turns[0].content), *turns[1:]]

        parts: list[str] = []
        for turn in turns:
            if turn.role == "user":
                if parts:
                    parts.append(self.exchange_separator)
                parts.append(f"[INST] {turn.content} [/INST]")
            else:
                parts.append(f"{self.reply_prefix}{turn.content}{self.reply_suffix}")
        if turns[-1].role == "assistant":
            # The model replies only after an instruction, so an empty one is added.
            parts.append(f"{self.exchange_separator}[INST]  [/INST]")
        return "".join(parts)


_GEMMA = _TurnFormat(
    name="gemma",
    stop=("<end_of_turn>", "<start_of_turn>user"),
    headers={"user": "<start_of_turn>user\n", "assistant": "<start_of_turn>model\n"},
    turn_end="<end_of_turn>\n",
    has_system_role=False,
)

_CHATML = _TurnFormat(
    name="chatml",
    stop=("<|im_end|>", "<|im_start|>user", "<|endoftext|>"),
    headers={
        "system": "<|im_start|>system\n",
        "user": "<|im_start|>user\n",
        "assistant": "<|im_start|>assistant\n",
    },
    turn_end="<|im_end|>\n",
    has_system_role=True,
)

_LLAMA_3 = _TurnFormat(
    name="llama-3",
    stop=("<|eot_id|>", "<|start_header_id|>user"),
    headers={
        "system": "<|start_header_id|>system<|end_header_id|>\n\n",
        "user": "<|start_header_id|>user<|end_header_id|>\n\n",
        "assistant": "<|start_header_id|>assistant<|end_header_id|>\n\n",
    },
    turn_end="<|eot_id|>",
    has_system_role=True,
)

_PHI_3 = _TurnFormat(
    name="phi-3",
    stop=("<|end|>", "<|user|>", "<|endoftext|>"),
    headers={"system": "<|system|>\n", "user": "<|user|>\n", "assistant": "<|assistant|>\n"},
    turn_end="<|end|>\n",
    has_system_role=True,
)

# Meta's reference layout: `<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]
# {reply} </s><s>[INST] {user} [/INST]`, here without the leading <s>.
_LLAMA_2 = _InstFormat(
    name="llama-2",
    stop=("</s>", "[INST]"),
    system_block="<<SYS>>\n{system}\n<</SYS>>\n\n",
    exchange_separator="<s>",
    reply_prefix=" ",
    reply_suffix=" </s>",
)

# Mistral's v1 layout: `<s>[INST] {user} [/INST] {reply}</s>[INST] {user} [/INST]`,
# here without the leading <s>.
_MISTRAL_INSTRUCT = _InstFormat(
    name="mistral-instruct",
    stop=("</s>", "[INST]"),
    system_block=None,
    exchange_separator="",
    reply_prefix=" ",
    reply_suffix="</s>",
)

_FORMATS: dict[str, PromptFormat] = {
    f.name: f for f in (_GEMMA, _CHATML, _LLAMA_2, _MISTRAL_INSTRUCT, _LLAMA_3, _PHI_3)
}


def get_format(name: str) -> PromptFormat:
    """Return the built-in format called `name`, one of FORMAT_NAMES.

    Raises ValueError naming the valid names when `name` is unknown.
    """
    prompt_format = _FORMATS.get(name.strip().lower())
    if prompt_format is None:
        raise ValueError(
            f"unknown chat format {name!r}; valid names: {', '.join(FORMAT_NAMES)}"
        )
    return prompt_format


# --------------------------------------------------------------------------------------
# Jinja templates from GGUF metadata
# --------------------------------------------------------------------------------------


class _TemplateFormat(PromptFormat):
    """A format rendered by a model's own Jinja chat template."""

    def __init__(self, template: str, *, bos_token: str, eos_token: str) -> None:
        # jinja2 is a dependency of llama-cpp-python; the import stays local so that the
        # built-in formats work without it.
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise jinja2.TemplateError(message)

        def strftime_now(date_format: str) -> str:
            return datetime.now().strftime(date_format)

        # The same environment options as Hugging Face transformers' chat templates.
        environment = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        environment.globals["raise_exception"] = raise_exception
        environment.globals["strftime_now"] = strftime_now
        environment.filters["tojson"] = _to_json
        try:
            self._template = environment.from_string(template)
        except jinja2.TemplateError as error:
            raise ValueError(f"invalid chat template: {error}") from error

        self._template_error = jinja2.TemplateError
        self._bos_token = bos_token
        self._eos_token = eos_token
        self.name = "gguf-template"
        self.stop = _template_stop_strings(template, eos_token)

    def render(self, messages: Sequence[ChatMessage]) -> str:
        system, turns = _normalize(messages)
        with_system = [ChatMessage("system", system), *turns] if system else turns
        try:
            prompt = self._render_turns(with_system)
        except self._template_error as first_error:
            # Templates that reject a system role or a leading assistant turn get the
            # system prompt folded into a user turn at the start.
            logger.debug("chat template rejected the conversation: %s", first_error)
            try:
                prompt = self._render_turns(_fold_system(system, _start_with_user(turns)))
            except self._template_error as error:
                raise ValueError(f"chat template failed to render: {error}") from error
        if self._bos_token and prompt.startswith(self._bos_token):
            prompt = prompt[len(self._bos_token) :]
        return prompt

    def _render_turns(self, turns: Sequence[ChatMessage]) -> str:
        return self._template.render(
            messages=[{"role": t.role, "content": t.content} for t in turns],
            add_generation_prompt=True,
            bos_token=self._bos_token,
            eos_token=self._eos_token,
        )


def _to_json(
    value: object,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """Serialize like transformers' `tojson`, without Jinja's HTML escaping."""
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _template_stop_strings(template: str, eos_token: str) -> tuple[str, ...]:
    stop: list[str] = [eos_token] if eos_token else []
    for marker, stop_strings in _TEMPLATE_STOP_HINTS.items():
        if marker in template:
            stop.extend(s for s in stop_strings if s not in stop)
    return tuple(stop)


def format_from_template(template: str, *, bos_token: str, eos_token: str) -> PromptFormat:
    """Build a format from a model's Jinja chat template.

    The template is the GGUF metadata value `tokenizer.chat_template`. It is rendered
    in a sandbox with `add_generation_prompt=True` and a `raise_exception` function, and
    a leading `bos_token` is removed from the result. The stop strings are `eos_token`
    and the end-of-turn strings that the template contains. Raises ValueError when the
    template does not compile or fails on a one-question conversation.
    """
    prompt_format = _TemplateFormat(template, bos_token=bos_token, eos_token=eos_token)
    prompt_format.render([ChatMessage("system", "Test."), ChatMessage("user", "Hi.")])
    return prompt_format


def _guess_special_tokens(template: str) -> tuple[str, str]:
    for marker, bos_token, eos_token in _TEMPLATE_SPECIAL_TOKENS:
        if marker in template:
            return bos_token, eos_token
    return "<s>", "</s>"


# --------------------------------------------------------------------------------------
# Format selection
# --------------------------------------------------------------------------------------


def _format_for_architecture(architecture: str, model_name: str) -> PromptFormat:
    """Return the built-in format for a GGUF `general.architecture` and `general.name`."""
    architecture = architecture.lower()
    if architecture.startswith("gemma"):
        return _GEMMA
    if architecture.startswith("phi3"):
        return _PHI_3
    if architecture.startswith("qwen"):
        return _CHATML
    if architecture.startswith("mistral") or _MISTRAL_NAME_RE.search(model_name):
        return _MISTRAL_INSTRUCT
    if architecture == "llama":
        return _LLAMA_3 if _LLAMA_3_NAME_RE.search(model_name) else _LLAMA_2
    return _CHATML


def choose_format(
    metadata: Mapping[str, str],
    override: str | None,
    *,
    bos_token: str | None = None,
    eos_token: str | None = None,
) -> PromptFormat:
    """Choose the prompt format for a model from its GGUF metadata.

    The order is: `override` (a name from FORMAT_NAMES; None or "auto" means none),
    then the model's `tokenizer.chat_template`, then a built-in format chosen from
    `general.architecture` and `general.name`, with ChatML for unknown models.
    `bos_token` and `eos_token` are the model's token texts for the template. When they
    are None, they are guessed from the template's markers. A template that fails to
    render is logged and skipped. Raises ValueError for an unknown override.
    """
    if override is not None and override.strip().lower() != "auto":
        prompt_format = get_format(override)
        logger.info("chat format %r chosen by the configured override", prompt_format.name)
        return prompt_format

    template = metadata.get("tokenizer.chat_template", "")
    if template.strip():
        guessed_bos, guessed_eos = _guess_special_tokens(template)
        try:
            prompt_format = format_from_template(
                template,
                bos_token=guessed_bos if bos_token is None else bos_token,
                eos_token=guessed_eos if eos_token is None else eos_token,
            )
        except ValueError as error:
            logger.warning(
                "the model's chat template is unusable, falling back to the architecture: %s",
                error,
            )
        else:
            logger.info("chat format taken from the model's tokenizer.chat_template")
            return prompt_format

    architecture = metadata.get("general.architecture", "")
    model_name = metadata.get("general.name", "")
    prompt_format = _format_for_architecture(architecture, model_name)
    logger.info(
        "chat format %r chosen from architecture %r and model name %r",
        prompt_format.name,
        architecture,
        model_name,
    )
    return prompt_format


def strip_stop_text(text: str, fmt: PromptFormat) -> str:
    """Cut `text` at the first end-of-turn marker or stop string of `fmt`.

    The markers are END_OF_TURN_MARKERS, whatever the format, so a marker that a model
    writes as plain text never reaches speech.
    """
    cut = len(text)
    for marker in (*END_OF_TURN_MARKERS, *fmt.stop):
        if not marker:
            continue
        index = text.find(marker, 0, cut)
        if index != -1:
            cut = index
    return text[:cut]
