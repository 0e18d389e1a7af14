"""The embedded model: streamed text with multi-byte characters, and grammar-constrained tool calls."""

from __future__ import annotations

import datetime
import json

import pytest

from assistant.agent import Agent
from assistant.config import LlmSettings, PersonaSettings
from assistant.skills import Skills
from assistant.speakable import split_sentences
from assistant.timers import TimerStore
from assistant.tools import NO_TOOL

pytestmark = pytest.mark.models

FIXED_NOW = datetime.datetime(2025, 12, 4, 14, 5)

# Rare emoji and kanji are split into several byte tokens by Gemma's tokenizer.
MULTIBYTE_PROMPTS = [
    "Rare emoji: 🦩🪼🫎🪿🧌🫠🪬 more: 🦤🪸",
    "日本語の文章を続けてください。東京は日本の首都です。京都は",
    "Rare kanji: 鬱 麤 龘 𠮷 齉 𪚥 and more",
    "Mix: café naïve 🍕 寿司 🍣 ✨ смайлик 😎 👨‍👩‍👧‍👦",
]
MAX_TOKENS = 40


@pytest.fixture(scope="module")
def agent() -> Agent:
    # One thread: on a loaded machine, llama.cpp's threads waiting on each other cost more than they gain.
    settings = LlmSettings(temperature=0.0, max_tokens=MAX_TOKENS, stop=[], tools="grammar", threads=1)
    return Agent(settings, PersonaSettings(), clock=lambda: FIXED_NOW)


@pytest.mark.parametrize("prompt", MULTIBYTE_PROMPTS)
def test_llama_stream_equals_completion(agent, prompt):
    """llama-cpp-python 0.3.36 streams whole characters: joined chunks equal the plain completion."""
    llm = agent._llm
    # A fresh context for each call, so that both evaluate the prompt the same way.
    llm.reset()
    whole = llm.create_completion(prompt, max_tokens=MAX_TOKENS, temperature=0.0)["choices"][0]["text"]
    llm.reset()
    chunks = [chunk["choices"][0]["text"] for chunk in
              llm.create_completion(prompt, max_tokens=MAX_TOKENS, temperature=0.0, stream=True)]

    assert whole.strip(), "the model wrote nothing to compare"
    assert [chunk for chunk in chunks if "\ufffd" in chunk] == []
    assert "".join(chunks) == whole


@pytest.mark.parametrize("prompt", MULTIBYTE_PROMPTS)
def test_agent_stream_keeps_characters_whole(agent, prompt):
    from llama_cpp import StoppingCriteriaList

    agent._llm.reset()
    pieces = list(agent._generate(prompt, lambda: False))
    agent._llm.reset()
    whole = agent._llm.create_completion(
        prompt, max_tokens=MAX_TOKENS, temperature=0.0, top_p=agent.settings.top_p, top_k=agent.settings.top_k,
        repeat_penalty=agent.settings.repeat_penalty, stop=list(agent.prompt_format.stop),
        stopping_criteria=StoppingCriteriaList([agent._at_end_of_turn]),
    )["choices"][0]["text"]

    assert [piece for piece in pieces if "\ufffd" in piece] == []
    assert "".join(pieces).strip(), "the model wrote nothing to compare"
    assert "".join(pieces) == whole


TOOL_REQUESTS = [
    "Could you start a countdown of 15 minutes?",
    "Tell me a joke",
    "how much is seven multiplied by eight",
    "Quelle est la capitale de la France ?",
    "Annule le minuteur",
    "Oublie tout",
]


@pytest.fixture
def skills(tmp_path) -> Skills:
    return Skills("en", TimerStore(tmp_path / "timers.json"), clock=lambda: FIXED_NOW)


def test_tool_calls_always_match_schema(agent, skills):
    agent.use_tools(skills)
    chooser = agent.tool_chooser
    names = {tool.name for tool in skills.tools()} | {NO_TOOL}
    for request in TOOL_REQUESTS:
        text = agent.generate_tool_call(request)
        content = json.loads(text)
        assert list(content) == ["tool", "arguments"], (request, text)
        assert content["tool"] in names, (request, text)
        call = chooser.parse(text)
        assert call.name == content["tool"], (request, text)


def test_tool_call_runs_the_skill(agent, skills):
    agent.use_tools(skills)
    runs = []
    run_tool = skills.run_tool

    def recording_run_tool(call):
        reply = run_tool(call)
        runs.append((call, reply))
        return reply

    skills.run_tool = recording_run_tool
    called = []
    # Requests like the prompt's examples, which the 270M model copies.
    for request in ["What's the time right now?", "Set a timer for 2 minutes", "how much is seven multiplied by eight"]:
        agent.reset()
        runs.clear()

        reply = list(agent.reply_sentences(request))

        if not runs:
            continue
        call, result = runs[0]
        called.append(call.name)
        assert len(runs) == 1, request
        assert reply == split_sentences(result.text), request
        assert agent.history[-1].content == result.text
        if call.name == "set_timer":
            seconds = call.arguments.hours * 3600 + call.arguments.minutes * 60 + call.arguments.seconds
            assert [timer.duration_seconds for timer in skills.timers.timers()] == [seconds]
        if call.name == "get_time":
            assert reply == ["It's 2:05 PM."]
    assert called, "the model chose no tool for any request"


def test_tool_prompt_too_large_for_context(skills):
    settings = LlmSettings(context_tokens=256, tools="grammar")
    small = Agent(settings, PersonaSettings(), clock=lambda: FIXED_NOW)
    with pytest.raises(RuntimeError, match="context_tokens"):
        small.use_tools(skills)
