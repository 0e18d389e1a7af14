"""Conversation memory: exchanges kept while the user talks, trimmed to fit, reset when idle."""

from __future__ import annotations

import datetime
import logging

import pytest

from assistant.agent import Agent
from assistant.chat_format import ChatMessage
from assistant.config import LlmSettings, PersonaSettings
from assistant.models import resolve_gguf

pytestmark = pytest.mark.models

FIXED_NOW = datetime.datetime(2025, 12, 4, 14, 5)

# Long turns in several scripts, so that trimming happens often and tokenization varies.
USER_TEXT = (
    "Tell me again about the history of the city, its bridges, its markets and its old port, "
    "and say it in a few words of Japanese too: 東京の歴史と橋について教えてください 🌉🏙️"
)
REPLY_TEXT = (
    "The city grew around its port; the stone bridges came later, and the markets still open "
    "every morning. En français : le vieux port, les ponts et les marchés. 港と橋と市場。"
)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def vocab_llm():
    """The embedded Gemma's tokenizer alone: enough to build and count prompts."""
    from llama_cpp import Llama

    return Llama(model_path=str(resolve_gguf("gemma-3-270m")), vocab_only=True, verbose=False)


def make_agent(llm, monotonic=None, **llm_settings) -> Agent:
    return Agent(
        LlmSettings(**llm_settings), PersonaSettings(), clock=lambda: FIXED_NOW,
        monotonic=monotonic or FakeMonotonic(), llm=llm,
    )


def add_exchange(agent: Agent, user: str, reply: str) -> None:
    agent.history += [ChatMessage("user", user), ChatMessage("assistant", reply)]


def test_forty_turns_fit_2048_tokens(vocab_llm):
    agent = make_agent(vocab_llm, context_tokens=2048, max_tokens=80)
    system_prompt = agent.system_prompt()
    sizes = []
    for turn in range(40):
        user = f"Turn {turn}. {USER_TEXT}"
        prompt = agent.build_prompt(user)
        size = agent.count_tokens(prompt)
        sizes.append(size)

        assert size + 80 <= 2048, f"turn {turn}: {size} prompt tokens"
        assert system_prompt in prompt, f"turn {turn}"
        assert user in prompt, f"turn {turn}"
        if turn > 0:
            # The previous exchange is the last one dropped.
            assert f"Turn {turn - 1}. " in prompt, f"turn {turn}"
        add_exchange(agent, user, f"Reply {turn}. {REPLY_TEXT}")

    # Trimming happened: the history contains far fewer than 40 exchanges, the latest ones.
    kept_turns = len(agent.history) // 2
    assert 2 <= kept_turns < 20
    assert agent.history[-2].content.startswith("Turn 39. ")
    assert max(sizes) > 1500


def test_examples_dropped_before_system_prompt(vocab_llm):
    agent = make_agent(vocab_llm, context_tokens=256, max_tokens=150)
    prompt = agent.build_prompt("What is the capital of Spain?")
    assert agent.count_tokens(prompt) + 150 <= 256
    assert agent.system_prompt() in prompt
    assert "What is the capital of Spain?" in prompt
    # The oldest example goes first.
    assert "The capital of Italy is Rome." not in prompt


def test_conversation_kept_while_talking(vocab_llm):
    monotonic = FakeMonotonic()
    agent = make_agent(vocab_llm, monotonic, conversation_idle_seconds=300)
    add_exchange(agent, "My name is Ada.", "Nice to meet you, Ada.")
    agent._remember("What is my name?", "Your name is Ada.")

    monotonic.now += 299
    assert "My name is Ada." in agent.build_prompt("And my age?")
    assert len(agent.history) == 4


def test_conversation_reset_after_idle(vocab_llm, caplog):
    monotonic = FakeMonotonic()
    agent = make_agent(vocab_llm, monotonic, conversation_idle_seconds=300)
    agent._remember("My name is Ada.", "Nice to meet you, Ada.")

    monotonic.now += 301
    with caplog.at_level(logging.INFO, logger="assistant.agent"):
        prompt = agent.build_prompt("What is my name?")

    assert "My name is Ada." not in prompt
    assert agent.history == []
    assert "Conversation idle for 301 s (conversation_idle_seconds = 300): starting a new one" in [
        record.getMessage() for record in caplog.records
    ]


def test_zero_idle_makes_every_request_new(vocab_llm):
    monotonic = FakeMonotonic()
    agent = make_agent(vocab_llm, monotonic, conversation_idle_seconds=0)
    agent._remember("My name is Ada.", "Nice to meet you, Ada.")
    monotonic.now += 0.5
    assert "My name is Ada." not in agent.build_prompt("What is my name?")


def test_reset_forgets(vocab_llm):
    agent = make_agent(vocab_llm)
    agent._remember("My name is Ada.", "Nice to meet you, Ada.")
    agent.reset()
    assert agent.history == []
    assert "My name is Ada." not in agent.build_prompt("What is my name?")


def test_idle_limit_read_at_each_turn(vocab_llm):
    """A reload replaces agent.settings; the new idle limit applies to the next turn."""
    monotonic = FakeMonotonic()
    agent = make_agent(vocab_llm, monotonic, conversation_idle_seconds=300)
    agent._remember("My name is Ada.", "Nice to meet you, Ada.")
    monotonic.now += 60
    agent.settings = LlmSettings(conversation_idle_seconds=30)
    assert "My name is Ada." not in agent.build_prompt("What is my name?")


def test_real_conversation_fits_small_context():
    """Real generation on a 320-token context: trimming keeps every prompt within it."""
    settings = LlmSettings(context_tokens=320, max_tokens=40, temperature=0.0)
    agent = Agent(settings, PersonaSettings(), clock=lambda: FIXED_NOW)
    sizes: list[int] = []
    build_prompt = agent.build_prompt

    def recording_build_prompt(user_text: str) -> str:
        prompt = build_prompt(user_text)
        sizes.append(agent.count_tokens(prompt))
        return prompt

    agent.build_prompt = recording_build_prompt
    questions = [
        "What is the capital of France?", "And of Germany?", "How many legs does a cat have?",
        "Name a planet.", "What colour is the sky?", "Who wrote Hamlet?", "What is two plus two?",
        "Quelle est la capitale de l'Espagne ?",
    ]
    for question in questions:
        agent.reply(question)

    assert len(sizes) == len(questions)
    assert all(size + 40 <= 320 for size in sizes), sizes
    print("prompt tokens per turn:", sizes)
    assert len(agent.history) < 2 * len(questions)
    assert agent.history[-2].content == questions[-1]
