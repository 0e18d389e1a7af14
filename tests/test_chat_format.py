"""Tests for chat prompt formats, format selection and stop-text removal."""

from __future__ import annotations

import logging

import pytest

from assistant.chat_format import (
    END_OF_TURN_MARKERS,
    FORMAT_NAMES,
    ChatMessage,
    choose_format,
    format_from_template,
    get_format,
    strip_stop_text,
)

SYSTEM = ChatMessage("system", "Be brief.")
HI = ChatMessage("user", "Hi")
HELLO = ChatMessage("assistant", "Hello!")
TIME = ChatMessage("user", "Time?")

SINGLE_TURN = [SYSTEM, HI]
MULTI_TURN = [SYSTEM, HI, HELLO, TIME]

# The ChatML layout written as a Jinja chat template, as found in GGUF metadata.
CHATML_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Gemma 1's template, which rejects a system role and turns that do not alternate.
GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)


# --------------------------------------------------------------------------------------
# Built-in formats
# --------------------------------------------------------------------------------------

SINGLE_TURN_PROMPTS = {
    "gemma": (
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\n"
    ),
    "chatml": (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
    "llama-2": "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]",
    "mistral-instruct": "[INST] Be brief.\n\nHi [/INST]",
    "llama-3": (
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "phi-3": "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n",
}

MULTI_TURN_PROMPTS = {
    "gemma": (
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nTime?<end_of_turn>\n"
        "<start_of_turn>model\n"
    ),
    "chatml": (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nTime?<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
    "llama-2": (
        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s>"
        "<s>[INST] Time? [/INST]"
    ),
    "mistral-instruct": "[INST] Be brief.\n\nHi [/INST] Hello!</s>[INST] Time? [/INST]",
    "llama-3": (
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nTime?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "phi-3": (
        "<|system|>\nBe brief.<|end|>\n"
        "<|user|>\nHi<|end|>\n"
        "<|assistant|>\nHello!<|end|>\n"
        "<|user|>\nTime?<|end|>\n"
        "<|assistant|>\n"
    ),
}

STOP_STRINGS = {
    "gemma": ("<end_of_turn>", "<start_of_turn>user"),
    "chatml": ("<|im_end|>", "<|im_start|>user", "<|endoftext|>"),
    "llama-2": ("</s>", "[INST]"),
    "mistral-instruct": ("</s>", "[INST]"),
    "llama-3": ("<|eot_id|>", "<|start_header_id|>user"),
    "phi-3": ("<|end|>", "<|user|>", "<|endoftext|>"),
}


def test_format_names_cover_all_formats():
    assert set(SINGLE_TURN_PROMPTS) == set(FORMAT_NAMES)
    for name in FORMAT_NAMES:
        assert get_format(name).name == name


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_single_turn_with_system(name):
    assert get_format(name).render(SINGLE_TURN) == SINGLE_TURN_PROMPTS[name]


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_multi_turn(name):
    assert get_format(name).render(MULTI_TURN) == MULTI_TURN_PROMPTS[name]


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_stop_strings(name):
    assert get_format(name).stop == STOP_STRINGS[name]


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_prompt_has_no_bos_text(name):
    prompt = get_format(name).render(MULTI_TURN)
    for bos in ("<bos>", "<s>", "<|begin_of_text|>"):
        assert not prompt.startswith(bos)


def test_gemma_without_system():
    prompt = get_format("gemma").render([HI])
    assert prompt == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"


def test_gemma_folds_system_once():
    prompt = get_format("gemma").render([SYSTEM, HI, HELLO, TIME])
    assert prompt.count("Be brief.") == 1
    assert prompt.startswith("<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n")


def test_mistral_folds_system():
    prompt = get_format("mistral-instruct").render([SYSTEM, HI])
    assert prompt == "[INST] Be brief.\n\nHi [/INST]"


def test_system_messages_merged_to_front():
    messages = [SYSTEM, HI, ChatMessage("system", "Answer in French.")]
    prompt = get_format("chatml").render(messages)
    assert prompt == (
        "<|im_start|>system\nBe brief.\n\nAnswer in French.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_consecutive_user_turns_merged():
    messages = [HI, ChatMessage("user", "Are you there?")]
    assert get_format("gemma").render(messages) == (
        "<start_of_turn>user\nHi\n\nAre you there?<end_of_turn>\n<start_of_turn>model\n"
    )
    assert get_format("mistral-instruct").render(messages) == "[INST] Hi\n\nAre you there? [/INST]"


def test_consecutive_assistant_turns_merged():
    messages = [HI, HELLO, ChatMessage("assistant", "Still here."), TIME]
    assert get_format("llama-2").render(messages) == (
        "[INST] Hi [/INST] Hello!\n\nStill here. </s><s>[INST] Time? [/INST]"
    )


def test_content_stripped():
    prompt = get_format("chatml").render([ChatMessage("user", "  Hi \n")])
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


ASSISTANT_FIRST = [ChatMessage("assistant", "How can I help?"), ChatMessage("user", "Time?")]

ASSISTANT_FIRST_PROMPTS = {
    "gemma": (
        "<start_of_turn>model\nHow can I help?<end_of_turn>\n"
        "<start_of_turn>user\nTime?<end_of_turn>\n"
        "<start_of_turn>model\n"
    ),
    "chatml": (
        "<|im_start|>assistant\nHow can I help?<|im_end|>\n"
        "<|im_start|>user\nTime?<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
    "llama-2": "[INST]  [/INST] How can I help? </s><s>[INST] Time? [/INST]",
    "mistral-instruct": "[INST]  [/INST] How can I help?</s>[INST] Time? [/INST]",
    "llama-3": (
        "<|start_header_id|>assistant<|end_header_id|>\n\nHow can I help?<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nTime?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "phi-3": (
        "<|assistant|>\nHow can I help?<|end|>\n"
        "<|user|>\nTime?<|end|>\n"
        "<|assistant|>\n"
    ),
}


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_conversation_starting_with_assistant(name):
    assert get_format(name).render(ASSISTANT_FIRST) == ASSISTANT_FIRST_PROMPTS[name]


def test_assistant_first_with_system_gemma():
    prompt = get_format("gemma").render([SYSTEM, *ASSISTANT_FIRST])
    assert prompt == (
        "<start_of_turn>user\nBe brief.<end_of_turn>\n"
        "<start_of_turn>model\nHow can I help?<end_of_turn>\n"
        "<start_of_turn>user\nTime?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_assistant_first_with_system_llama_2():
    prompt = get_format("llama-2").render([SYSTEM, *ASSISTANT_FIRST])
    assert prompt == (
        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n [/INST] How can I help? </s>"
        "<s>[INST] Time? [/INST]"
    )


def test_conversation_ending_with_assistant_mistral():
    prompt = get_format("mistral-instruct").render([HI, HELLO])
    assert prompt == "[INST] Hi [/INST] Hello!</s>[INST]  [/INST]"


def test_empty_conversation():
    assert get_format("chatml").render([]) == "<|im_start|>assistant\n"
    assert get_format("mistral-instruct").render([]) == "[INST]  [/INST]"


def test_invalid_role_raises():
    with pytest.raises(ValueError, match="'tool'"):
        get_format("chatml").render([ChatMessage("tool", "42")])


def test_get_format_unknown_name():
    with pytest.raises(ValueError) as caught:
        get_format("alpaca")
    message = str(caught.value)
    assert "'alpaca'" in message
    for name in FORMAT_NAMES:
        assert name in message


def test_get_format_case_and_spaces():
    assert get_format(" Gemma ").name == "gemma"


# --------------------------------------------------------------------------------------
# Jinja templates
# --------------------------------------------------------------------------------------


def test_template_chatml_matches_builtin():
    fmt = format_from_template(CHATML_TEMPLATE, bos_token="<s>", eos_token="<|im_end|>")
    assert fmt.render(MULTI_TURN) == MULTI_TURN_PROMPTS["chatml"]


def test_template_strips_bos():
    fmt = format_from_template(CHATML_TEMPLATE, bos_token="<|startoftext|>", eos_token="</s>")
    prompt = fmt.render([HI])
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_template_stop_strings():
    fmt = format_from_template(CHATML_TEMPLATE, bos_token="<s>", eos_token="<|endoftext|>")
    assert fmt.stop == ("<|endoftext|>", "<|im_end|>", "<|im_start|>user")


def test_template_system_rejected_folded():
    fmt = format_from_template(GEMMA_TEMPLATE, bos_token="<bos>", eos_token="<eos>")
    assert fmt.render(MULTI_TURN) == MULTI_TURN_PROMPTS["gemma"]
    assert fmt.stop == ("<eos>", "<end_of_turn>", "<start_of_turn>user")


def test_template_alternation_merged_turns():
    fmt = format_from_template(GEMMA_TEMPLATE, bos_token="<bos>", eos_token="<eos>")
    prompt = fmt.render([HI, ChatMessage("user", "Are you there?")])
    assert prompt == "<start_of_turn>user\nHi\n\nAre you there?<end_of_turn>\n<start_of_turn>model\n"


def test_template_assistant_first_empty_user():
    fmt = format_from_template(GEMMA_TEMPLATE, bos_token="<bos>", eos_token="<eos>")
    prompt = fmt.render(ASSISTANT_FIRST)
    assert prompt == (
        "<start_of_turn>user\n<end_of_turn>\n"
        "<start_of_turn>model\nHow can I help?<end_of_turn>\n"
        "<start_of_turn>user\nTime?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_template_tojson_not_html_escaped():
    template = "{{ messages[-1]['content'] | tojson }}"
    fmt = format_from_template(template, bos_token="", eos_token="")
    assert fmt.render([ChatMessage("user", "a<b & 'c' é")]) == '"a<b & \'c\' é"'


def test_template_syntax_error_raises():
    with pytest.raises(ValueError, match="invalid chat template"):
        format_from_template("{% for %}", bos_token="<s>", eos_token="</s>")


def test_template_always_raising_raises():
    template = "{{ raise_exception('no chats here') }}"
    with pytest.raises(ValueError, match="no chats here"):
        format_from_template(template, bos_token="<s>", eos_token="</s>")


def test_template_sandbox_blocks_internals():
    template = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(ValueError, match="failed to render"):
        format_from_template(template, bos_token="<s>", eos_token="</s>")


# --------------------------------------------------------------------------------------
# choose_format
# --------------------------------------------------------------------------------------

ARCHITECTURE_CASES = [
    ({"general.architecture": "gemma3", "general.name": "Gemma 3 270m"}, "gemma"),
    ({"general.architecture": "gemma2", "general.name": "gemma-2-2b-it"}, "gemma"),
    ({"general.architecture": "gemma", "general.name": "gemma-7b-it"}, "gemma"),
    ({"general.architecture": "llama", "general.name": "Meta Llama 3.1 8B Instruct"}, "llama-3"),
    ({"general.architecture": "llama", "general.name": "Meta-Llama-3-8B-Instruct"}, "llama-3"),
    ({"general.architecture": "llama", "general.name": "Llama-3.2-1B-Instruct"}, "llama-3"),
    ({"general.architecture": "llama", "general.name": "LLaMA v2"}, "llama-2"),
    ({"general.architecture": "llama", "general.name": "llama-2-7b-chat"}, "llama-2"),
    ({"general.architecture": "llama"}, "llama-2"),
    ({"general.architecture": "llama", "general.name": "Mistral 7B Instruct v0.2"}, "mistral-instruct"),
    ({"general.architecture": "llama", "general.name": "Mixtral 8x7B Instruct"}, "mistral-instruct"),
    ({"general.architecture": "phi3", "general.name": "Phi 3 Mini 4k Instruct"}, "phi-3"),
    ({"general.architecture": "qwen2", "general.name": "Qwen2.5 0.5B Instruct"}, "chatml"),
    ({"general.architecture": "qwen3", "general.name": "Qwen3 0.6B"}, "chatml"),
    ({"general.architecture": "rwkv6", "general.name": "Something"}, "chatml"),
    ({}, "chatml"),
]


@pytest.mark.parametrize(("metadata", "expected"), ARCHITECTURE_CASES)
def test_choose_format_by_architecture(metadata, expected):
    assert choose_format(metadata, None).name == expected


def test_choose_format_embedded_gemma_3():
    # The embedded Gemma 3 270M GGUF has no tokenizer.chat_template.
    metadata = {
        "general.architecture": "gemma3",
        "general.name": "Gemma 3 270m",
        "tokenizer.ggml.bos_token_id": "2",
        "tokenizer.ggml.eos_token_id": "1",
    }
    fmt = choose_format(metadata, None)
    assert fmt.name == "gemma"
    assert fmt.render([HI]) == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"


def test_choose_format_override_wins():
    metadata = {"general.architecture": "gemma3", "tokenizer.chat_template": CHATML_TEMPLATE}
    assert choose_format(metadata, "llama-3").name == "llama-3"


def test_choose_format_auto_override():
    metadata = {"general.architecture": "gemma3"}
    assert choose_format(metadata, "auto").name == "gemma"


def test_choose_format_unknown_override_raises():
    with pytest.raises(ValueError) as caught:
        choose_format({"general.architecture": "gemma3"}, "vicuna")
    for name in FORMAT_NAMES:
        assert name in str(caught.value)


def test_choose_format_uses_template():
    metadata = {"general.architecture": "llama", "tokenizer.chat_template": CHATML_TEMPLATE}
    fmt = choose_format(metadata, None)
    assert fmt.name == "gguf-template"
    assert fmt.render(MULTI_TURN) == MULTI_TURN_PROMPTS["chatml"]


def test_choose_format_guesses_template_tokens():
    metadata = {"general.architecture": "gemma", "tokenizer.chat_template": GEMMA_TEMPLATE}
    fmt = choose_format(metadata, None)
    assert fmt.render([HI]) == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    assert fmt.stop[0] == "<eos>"


def test_choose_format_given_tokens():
    metadata = {"tokenizer.chat_template": CHATML_TEMPLATE}
    fmt = choose_format(metadata, None, bos_token="<|startoftext|>", eos_token="<|endoftext|>")
    assert fmt.render([HI]) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert fmt.stop[0] == "<|endoftext|>"


def test_choose_format_broken_template(caplog):
    metadata = {"general.architecture": "gemma3", "tokenizer.chat_template": "{% if %}"}
    with caplog.at_level(logging.WARNING, logger="assistant.chat_format"):
        fmt = choose_format(metadata, None)
    assert fmt.name == "gemma"
    assert "chat template is unusable" in caplog.text


def test_choose_format_logs_source(caplog):
    with caplog.at_level(logging.INFO, logger="assistant.chat_format"):
        choose_format({"general.architecture": "gemma3"}, None)
        choose_format({"tokenizer.chat_template": CHATML_TEMPLATE}, None)
        choose_format({}, "phi-3")
    messages = [record.getMessage() for record in caplog.records]
    assert any("architecture 'gemma3'" in message for message in messages)
    assert any("tokenizer.chat_template" in message for message in messages)
    assert any("override" in message for message in messages)


# --------------------------------------------------------------------------------------
# strip_stop_text
# --------------------------------------------------------------------------------------

STRIP_CASES = [
    ("gemma", "Hello<end_of_turn>\n<start_of_turn>user\nmore", "Hello"),
    ("gemma", "Hello<start_of_turn>user\nmore", "Hello"),
    ("gemma", "Hello there.", "Hello there."),
    ("gemma", "Hi<|im_end|>junk", "Hi"),
    ("chatml", "Hi<|im_end|>", "Hi"),
    ("chatml", "Hi<|endoftext|><|im_start|>user", "Hi"),
    ("llama-3", "<|eot_id|>Hi", ""),
    ("llama-2", "Sure. </s><s>[INST] next", "Sure. "),
    ("mistral-instruct", "Sure [INST] more", "Sure "),
    ("phi-3", "a<|end|>b<|im_end|>c", "a"),
    ("phi-3", "Hi<|user|>\nmore", "Hi"),
    ("chatml", "", ""),
]


@pytest.mark.parametrize(("name", "text", "expected"), STRIP_CASES)
def test_strip_stop_text(name, text, expected):
    assert strip_stop_text(text, get_format(name)) == expected


@pytest.mark.parametrize("marker", END_OF_TURN_MARKERS)
def test_strip_stop_text_every_marker(marker):
    assert strip_stop_text(f"Done.{marker} tail", get_format("gemma")) == "Done."


def test_strip_stop_text_template_format():
    fmt = format_from_template(CHATML_TEMPLATE, bos_token="<s>", eos_token="<|endoftext|>")
    assert strip_stop_text("Yes<|im_start|>user\nok", fmt) == "Yes"
