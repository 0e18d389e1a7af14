"""Tool calls by the language model, held to a JSON schema by a llama.cpp grammar.

The model writes one JSON object, {"tool": NAME, "arguments": {...}}, where NAME
is one of the tools or "none". The grammar comes from the JSON schema of that
object (llama_cpp.LlamaGrammar.from_json_schema), so sampling can only produce
text that parses, with the arguments that the chosen tool takes. Values are not
range-checked by the grammar: each tool checks its own arguments.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from assistant.chat_format import ChatMessage

if TYPE_CHECKING:
    from llama_cpp import LlamaGrammar

NO_TOOL = "none"

# Enough for the longest call of the tools below, with 16-digit numbers.
CALL_MAX_TOKENS = 96


class NoArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Tool:
    """A function the model may call."""

    name: str
    description: str
    arguments: type[BaseModel] = NoArguments
    #: Requests with the arguments they call the tool with, shown to the model as examples.
    examples: tuple[tuple[str, dict[str, Any]], ...] = field(default=())


@dataclass(frozen=True)
class ToolCall:
    """The model's choice: a tool name, or NO_TOOL, and the validated arguments."""

    name: str
    arguments: BaseModel


class ToolChooser:
    """The schema, grammar and prompt that let a model choose among `tools`."""

    def __init__(self, tools: Sequence[Tool], no_tool_examples: Sequence[str] = ()) -> None:
        names = [tool.name for tool in tools]
        if NO_TOOL in names or len(set(names)) != len(names):
            raise ValueError(f"tool names must be unique and not {NO_TOOL!r}: {names}")
        self.tools = {tool.name: tool for tool in tools}
        self._no_tool_examples = tuple(no_tool_examples)
        call_models = [_call_model(tool.name, tool.arguments) for tool in tools]
        call_models.append(_call_model(NO_TOOL, NoArguments))
        self._adapter: TypeAdapter[Any] = TypeAdapter(
            Annotated[Union[tuple(call_models)], Field(discriminator="tool")]  # noqa: UP007 - a runtime tuple
        )
        self.schema: dict[str, Any] = self._adapter.json_schema()
        self._grammar: LlamaGrammar | None = None

    def grammar(self) -> LlamaGrammar:
        """Return the llama.cpp grammar of the call schema, built on first use."""
        if self._grammar is None:
            from llama_cpp import LlamaGrammar

            self._grammar = LlamaGrammar.from_json_schema(json.dumps(self.schema), verbose=False)
        return self._grammar

    def messages(self, user_text: str) -> list[ChatMessage]:
        """Return the conversation that prompts the model to choose a tool for `user_text`."""
        lines = [
            'Choose the tool that fulfils the user\'s request. Reply with one JSON object: '
            '{"tool": NAME, "arguments": {...}}. The tools:'
        ]
        for tool in self.tools.values():
            lines.append(f"- {tool.name}: {tool.description} Arguments: {_describe_arguments(tool.arguments)}.")
        lines.append(f"- {NO_TOOL}: any other request, answered in words. Arguments: none.")
        messages = [ChatMessage("system", "\n".join(lines))]

        for tool in self.tools.values():
            for request, arguments in tool.examples:
                messages += [ChatMessage("user", request), ChatMessage("assistant", _call_json(tool.name, arguments))]
        for request in self._no_tool_examples:
            messages += [ChatMessage("user", request), ChatMessage("assistant", _call_json(NO_TOOL, {}))]
        messages.append(ChatMessage("user", user_text))
        return messages

    def parse(self, text: str) -> ToolCall:
        """Validate the model's JSON against the call schema; raise ValueError if it does not match."""
        call = self._adapter.validate_json(text)
        return ToolCall(call.tool, call.arguments)


def _call_model(name: str, arguments: type[BaseModel]) -> type[BaseModel]:
    return create_model(
        f"{name}_call",
        __config__=ConfigDict(extra="forbid"),
        tool=(Literal[name], ...),
        arguments=(arguments, ...),
    )


def _call_json(name: str, arguments: dict[str, Any]) -> str:
    return json.dumps({"tool": name, "arguments": arguments}, ensure_ascii=False)


def _describe_arguments(model: type[BaseModel]) -> str:
    properties = model.model_json_schema().get("properties", {})
    if not properties:
        return "none"
    parts = []
    for name, schema in properties.items():
        kind = " or ".join(json.dumps(value) for value in schema["enum"]) if "enum" in schema else schema.get("type", "")
        parts.append(f"{name} ({kind})")
    return ", ".join(parts)
