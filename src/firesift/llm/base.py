"""The LLM interface every backend implements, the values it speaks, and the backend registry.

Design decisions:

- **One core method.** A backend implements :meth:`LLM.execute`: send a conversation (and
  optionally function tools) and yield :data:`LLMEvent` values as they arrive: :class:`TextDelta`
  pieces, whole :class:`ToolCall` values (a backend assembles streamed argument fragments before
  yielding one), :class:`Usage` and a closing :class:`Finish`. Everything else (:meth:`LLM.chat`,
  :meth:`LLM.complete`) is convenience on the base class, so a new backend (a vLLM fleet, a local
  runtime) is one small class.
- **Capabilities are class attributes checked in one place.** ``supports_tools`` and
  ``supports_streaming`` say what a backend can do; :meth:`LLM.chat` is the only place that
  looks at them (tools to a model without them is an error the caller can act on; streaming
  from a backend without it silently degrades to one delta). An instance may narrow a capability
  (an OpenAI-compatible server whose model turns out to have no tools) by shadowing the
  attribute.
- **Built-ins register exactly as a plugin would**, by name, through :func:`register`; lookup
  errors list the registered names, built from the registry itself.
- Values are frozen, slotted dataclasses; JSON wire shapes stay inside the backends.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from firesift.errors import ConfigError, FiresiftError, NotFound

if TYPE_CHECKING:
    from firesift.config import Settings

__all__ = [
    "LLM",
    "LLMS",
    "ChatMessage",
    "Completion",
    "Finish",
    "LLMError",
    "LLMEvent",
    "LLMNotConfigured",
    "LLMTimeout",
    "TextDelta",
    "ToolCall",
    "ToolSpec",
    "ToolsUnsupported",
    "Usage",
    "from_settings",
    "get",
    "names",
    "register",
    "unregister",
]


class LLMError(FiresiftError):
    """The LLM backend failed (unreachable, refused, timed out, or answered nonsense).

    ``status`` is the HTTP status when the endpoint answered with one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LLMTimeout(LLMError):
    """The LLM endpoint did not answer (or stopped streaming) within the timeout."""


class LLMNotConfigured(LLMError, ConfigError):
    """No usable LLM endpoint or model is configured."""


class ToolsUnsupported(LLMError):
    """The model refused a request because it carried tools; retry without them."""


Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call: name, description and a JSON-schema for the arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for ``name`` to be run with ``arguments`` (raw JSON text, as sent)."""

    id: str
    name: str
    arguments: str = "{}"

    def parsed(self) -> dict[str, Any]:
        """The arguments as a JSON object; raises :class:`ValueError` when they are not one."""
        value = json.loads(self.arguments or "{}")
        if not isinstance(value, dict):
            raise ValueError("tool arguments must be a JSON object")
        return value


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a conversation sent to a model. An assistant message may carry the
    ``tool_calls`` it made; a ``tool`` message answers the call ``tool_call_id``."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a request consumed, as the endpoint reported them; ``+`` sums rounds."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True, slots=True)
class Finish:
    """The model stopped: ``"stop"``, ``"tool_calls"``, ``"length"``, ``"content_filter"``."""

    reason: str


LLMEvent = TextDelta | ToolCall | Usage | Finish


@dataclass(frozen=True, slots=True)
class Completion:
    """All events of one request, collected (see :meth:`LLM.complete`)."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    finish_reason: str = ""
    events: tuple[LLMEvent, ...] = field(default=(), repr=False)


class LLM(ABC):
    """A chat model behind one method. Subclasses set ``name`` (the registry key) and their
    capabilities, and implement :meth:`execute`."""

    name: ClassVar[str]
    supports_tools: bool = False
    supports_streaming: bool = False
    model: str = ""

    @abstractmethod
    def execute(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] | None,
        stream: bool,
    ) -> Iterator[LLMEvent]:
        """Send ``messages`` (with ``tools`` when given) and yield events as they arrive,
        ending with one :class:`Finish`. Raises :class:`LLMError` on failure, including while
        iterating."""

    @classmethod
    def from_settings(cls, settings: Settings) -> LLM:
        """A backend configured from firesift's settings table."""
        raise LLMNotConfigured(f"LLM backend {cls.name!r} cannot be configured from settings")

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] | None = None,
        stream: bool = True,
    ) -> Iterator[LLMEvent]:
        """:meth:`execute` with the capability checks: tools to a backend without them raise
        :class:`ToolsUnsupported`; ``stream`` is ignored by backends that cannot stream."""
        if tools and not self.supports_tools:
            raise ToolsUnsupported(f"{self.describe()} does not support tool calling")
        return self.execute(
            messages,
            tools=list(tools) if tools else None,
            stream=stream and self.supports_streaming,
        )

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] | None = None,
        stream: bool = False,
    ) -> Completion:
        """Run :meth:`chat` to the end and collect its events."""
        events = tuple(self.chat(messages, tools=tools, stream=stream))
        usage: Usage | None = None
        for e in events:
            if isinstance(e, Usage):
                usage = e if usage is None else usage + e
        return Completion(
            text="".join(e.text for e in events if isinstance(e, TextDelta)),
            tool_calls=tuple(e for e in events if isinstance(e, ToolCall)),
            usage=usage,
            finish_reason=next((e.reason for e in events if isinstance(e, Finish)), ""),
            events=events,
        )

    def describe(self) -> str:
        """A short human description for messages (``openai model 'x'``)."""
        return f"{self.name} model {self.model!r}" if self.model else f"{self.name} backend"

    def close(self) -> None:
        """Release connections; the default holds none."""
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


LLMS: dict[str, type[LLM]] = {}
"""Registered backends by name, in registration order."""


def register(cls: type[LLM], *, replace: bool = False) -> type[LLM]:
    """Add a backend class under ``cls.name``; a taken name needs ``replace`` (so a plugin
    cannot silently shadow a built-in). Usable as a class decorator."""
    name = getattr(cls, "name", "")
    if not name or not isinstance(name, str):
        raise ValueError("an LLM backend needs a non-empty string name")
    if name in LLMS and not replace:
        raise ValueError(f"LLM backend {name!r} is already registered")
    LLMS[name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a backend (plugins and tests); unknown names raise :class:`NotFound`."""
    get(name)
    del LLMS[name]


def names() -> list[str]:
    return list(LLMS)


def get(name: str) -> type[LLM]:
    """The backend class registered as ``name``; the error lists the valid names."""
    try:
        return LLMS[name]
    except KeyError:
        valid = ", ".join(LLMS) or "(none registered)"
        raise NotFound(f"unknown LLM backend {name!r}; valid backends: {valid}") from None


def from_settings(settings: Settings, name: str = "openai") -> LLM:
    """The backend ``name`` configured from ``settings``."""
    return get(name).from_settings(settings)
