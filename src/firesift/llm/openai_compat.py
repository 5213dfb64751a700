"""Any OpenAI-compatible chat endpoint, through the official ``openai`` client.

One backend covers xAI, OpenAI, vLLM, Ollama, llama.cpp's server, LM Studio and LiteLLM: they
all speak ``POST /v1/chat/completions``. Configure a base URL (``.../v1``), a key (local servers
ignore it) and a model.

Design decisions:

- **Streaming by default**, with ``stream_options.include_usage`` so the last chunk reports
  tokens. Tool-call fragments (``index``, then ``id`` and ``function.name``, then pieces of
  ``function.arguments``) are assembled here and yielded as whole :class:`ToolCall` values once
  the stream ends, so callers never see half a call.
- **Timeouts are per read**, not per request: ``timeout`` bounds the wait for each chunk, so a
  long answer that keeps streaming is fine and a stalled one fails in ``timeout`` seconds. The
  SDK retries 408/409/429/5xx ``max_retries`` times (default 1: an answer is interactive).
- **Errors become** :class:`~firesift.llm.base.LLMError` **at this edge**, with messages that
  name the endpoint and the setting to fix. A 400 that complains about tools (Ollama: "does not
  support tools"; vLLM without ``--enable-auto-tool-choice``) becomes
  :class:`~firesift.llm.base.ToolsUnsupported` and narrows this instance's ``supports_tools``,
  so the caller can retry prompt-only once and later requests skip tools.
- **No ambient configuration.** Only firesift's settings are read (never ``OPENAI_*``
  variables), so one precedence holds. An empty model is resolved from ``GET /v1/models`` when
  the endpoint serves exactly one (llama.cpp, single-model vLLM).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import openai

from firesift.llm.base import (
    LLM,
    ChatMessage,
    Finish,
    LLMError,
    LLMEvent,
    LLMNotConfigured,
    LLMTimeout,
    TextDelta,
    ToolCall,
    ToolSpec,
    ToolsUnsupported,
    Usage,
)

if TYPE_CHECKING:
    from firesift.config import Settings

__all__ = ["OpenAICompatLLM"]

_NOT_CONFIGURED = (
    "no LLM configured: set FIRESIFT_LLM_BASE_URL (e.g. http://127.0.0.1:11434/v1 for Ollama, "
    "https://api.x.ai/v1 for xAI), FIRESIFT_LLM_MODEL and, if the endpoint needs one, "
    "FIRESIFT_LLM_API_KEY (or llm_base_url / llm_model / llm_api_key in the config file)"
)


@dataclass(slots=True)
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAICompatLLM(LLM):
    """A model served over the OpenAI Chat Completions protocol."""

    name: ClassVar[str] = "openai"
    supports_tools = True
    supports_streaming = True

    def __init__(
        self,
        *,
        base_url: str,
        model: str = "",
        api_key: str = "",
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_retries: int = 1,
        supports_tools: bool | None = None,
        stream_usage: bool = True,
        temperature: float | None = 0.2,
    ) -> None:
        if not base_url:
            raise LLMNotConfigured(_NOT_CONFIGURED)
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.stream_usage = stream_usage
        self.temperature = temperature
        if supports_tools is not None:
            self.supports_tools = supports_tools
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or "unused",
            timeout=openai.Timeout(timeout, connect=connect_timeout),
            max_retries=max_retries,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatLLM:
        """The endpoint named by ``llm_base_url`` / ``llm_api_key`` / ``llm_model``."""
        if not settings.llm_base_url:
            raise LLMNotConfigured(_NOT_CONFIGURED)
        return cls(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key,
            model=settings.llm_model,
        )

    def close(self) -> None:
        self._client.close()

    def resolve_model(self) -> str:
        """The configured model, or the only one the endpoint serves."""
        if self.model:
            return self.model
        try:
            served = [m.id for m in self._client.models.list()]
        except openai.OpenAIError as e:
            raise self._translate(e) from e
        if len(served) != 1:
            listed = ", ".join(served[:20]) or "none"
            raise LLMNotConfigured(
                f"no LLM model configured: set FIRESIFT_LLM_MODEL; {self.base_url} serves {listed}"
            )
        self.model = served[0]
        return self.model

    def execute(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] | None,
        stream: bool,
    ) -> Iterator[LLMEvent]:
        params: dict[str, Any] = {
            "model": self.resolve_model(),
            "messages": [_wire_message(m) for m in messages],
        }
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if tools:
            params["tools"] = [_wire_tool(t) for t in tools]
        try:
            if stream:
                if self.stream_usage:
                    params["stream_options"] = {"include_usage": True}
                yield from self._stream(params)
            else:
                yield from self._once(params)
        except openai.OpenAIError as e:
            error = self._translate(e)
            if isinstance(error, ToolsUnsupported):
                self.supports_tools = False
            raise error from e

    def _stream(self, params: dict[str, Any]) -> Iterator[LLMEvent]:
        chunks = self._client.chat.completions.create(**params, stream=True)
        pending: dict[int, _PendingCall] = {}
        usage: Usage | None = None
        reason = ""
        with chunks:
            for chunk in chunks:
                if chunk.usage is not None:
                    usage = _usage(chunk.usage)
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    delta = choice.delta
                    if delta.content:
                        yield TextDelta(delta.content)
                    for part in delta.tool_calls or ():
                        call = pending.setdefault(part.index, _PendingCall())
                        if part.id:
                            call.id = part.id
                        if part.function is not None:
                            if part.function.name:
                                call.name += part.function.name
                            if part.function.arguments:
                                call.arguments.append(part.function.arguments)
                    if choice.finish_reason:
                        reason = choice.finish_reason
        for index in sorted(pending):
            call = pending[index]
            if not call.name:
                raise LLMError(f"{self.describe()} streamed a tool call without a function name")
            yield ToolCall(
                id=call.id or f"call_{index}",
                name=call.name,
                arguments="".join(call.arguments) or "{}",
            )
        if usage is not None:
            yield usage
        yield Finish(reason or ("tool_calls" if pending else "stop"))

    def _once(self, params: dict[str, Any]) -> Iterator[LLMEvent]:
        response = self._client.chat.completions.create(**params)
        if not response.choices:
            raise LLMError(f"{self.describe()} at {self.base_url} returned no choices")
        choice = response.choices[0]
        if choice.message.content:
            yield TextDelta(choice.message.content)
        for i, call in enumerate(choice.message.tool_calls or ()):
            function = getattr(call, "function", None)
            if function is None:
                continue
            yield ToolCall(
                id=call.id or f"call_{i}", name=function.name, arguments=function.arguments or "{}"
            )
        if response.usage is not None:
            yield _usage(response.usage)
        yield Finish(choice.finish_reason or "stop")

    def _translate(self, e: openai.OpenAIError) -> LLMError:
        where = f"LLM endpoint {self.base_url}"
        if isinstance(e, openai.APITimeoutError):
            return LLMTimeout(
                f"{where} did not answer within {self.timeout:g}s (model {self.model!r})"
            )
        if isinstance(e, openai.APIConnectionError):
            cause = e.__cause__ or e
            return LLMError(f"cannot reach {where}: {cause}; check FIRESIFT_LLM_BASE_URL")
        if isinstance(e, openai.APIStatusError):
            status = e.status_code
            detail = _error_detail(e)
            if isinstance(e, openai.AuthenticationError | openai.PermissionDeniedError):
                return LLMError(
                    f"{where} rejected the API key (HTTP {status}: {detail}); "
                    "check FIRESIFT_LLM_API_KEY",
                    status=status,
                )
            if isinstance(e, openai.NotFoundError):
                return LLMError(
                    f"{where} has no model {self.model!r} or no /chat/completions route "
                    f"(HTTP 404: {detail}); check FIRESIFT_LLM_MODEL and that the URL ends in /v1",
                    status=status,
                )
            if status in (400, 422) and "tool" in detail.lower():
                return ToolsUnsupported(
                    f"{self.describe()} does not accept tools (HTTP {status}: {detail})",
                    status=status,
                )
            if isinstance(e, openai.RateLimitError):
                return LLMError(
                    f"{where} is rate limiting requests (HTTP 429: {detail})", status=429
                )
            return LLMError(f"{where} failed with HTTP {status}: {detail}", status=status)
        if isinstance(e, openai.APIError):
            return LLMError(f"{where} reported an error mid-answer: {e.message}")
        return LLMError(f"{where}: {e}")


def _error_detail(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return e.message


def _usage(u: Any) -> Usage:
    prompt = int(getattr(u, "prompt_tokens", 0) or 0)
    completion = int(getattr(u, "completion_tokens", 0) or 0)
    total = int(getattr(u, "total_tokens", 0) or 0) or prompt + completion
    return Usage(prompt, completion, total)


def _wire_message(m: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in m.tool_calls
        ]
        out["content"] = m.content or None
    if m.role == "tool":
        out["tool_call_id"] = m.tool_call_id or ""
    return out


def _wire_tool(t: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": t.name,
            "description": t.description,
            "parameters": dict(t.parameters),
        },
    }
