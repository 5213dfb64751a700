"""The LLM interface, its registry and the OpenAI-compatible backend, over real HTTP against the
scripted fake server in ``fake_openai``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import pytest

from fake_openai import FakeOpenAI, Reply
from firesift import config, llm
from firesift.errors import ConfigError, NotFound
from firesift.llm import (
    LLM,
    ChatMessage,
    Finish,
    LLMError,
    LLMEvent,
    LLMNotConfigured,
    LLMTimeout,
    OpenAICompatLLM,
    TextDelta,
    ToolCall,
    ToolSpec,
    ToolsUnsupported,
    Usage,
)

SEARCH = ToolSpec(
    "search_posts",
    "Search posts.",
    {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)
HELLO = [ChatMessage("system", "Be brief."), ChatMessage("user", "What happened in Ottawa?")]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def make() -> Iterator[Callable[..., OpenAICompatLLM]]:
    """Build backends (closed at teardown); defaults: no retries, 2 s timeout."""
    made: list[OpenAICompatLLM] = []

    def build(base_url: str, **kw: Any) -> OpenAICompatLLM:
        kw.setdefault("timeout", 2)
        kw.setdefault("max_retries", 0)
        made.append(OpenAICompatLLM(base_url=base_url, **kw))
        return made[-1]

    yield build
    for m in made:
        m.close()


@pytest.fixture
def model(server: FakeOpenAI, make: Callable[..., OpenAICompatLLM]) -> OpenAICompatLLM:
    return make(server.base_url, model="fake-model")


def test_streams_text_deltas_as_they_arrive(server: FakeOpenAI, model: OpenAICompatLLM) -> None:
    server.enqueue(Reply(pieces=["Shots were ", "fired on ", "Parliament Hill [2]."]))
    events = list(model.chat(HELLO))
    assert [e.text for e in events if isinstance(e, TextDelta)] == [
        "Shots were ",
        "fired on ",
        "Parliament Hill [2].",
    ]
    assert isinstance(events[-1], Finish) and events[-1].reason == "stop"
    sent = server.history[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["model"] == "fake-model"
    assert sent.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What happened in Ottawa?"},
    ]
    assert "tools" not in sent.body


def test_usage_is_reported_streaming_and_not(server: FakeOpenAI, model: OpenAICompatLLM) -> None:
    usage = {"prompt_tokens": 120, "completion_tokens": 7, "total_tokens": 127}
    server.enqueue(Reply(text="One. Two.", usage=usage), Reply(text="Three.", usage=usage))
    streamed = model.complete(HELLO, stream=True)
    once = model.complete(HELLO, stream=False)
    assert streamed.usage == once.usage == Usage(120, 7, 127)
    assert streamed.text == "One. Two."
    assert once.text == "Three."
    assert server.history[-1].body.get("stream") in (None, False)
    assert Usage(1, 2, 3) + Usage(10, 20, 30) == Usage(11, 22, 33)


def test_tool_call_fragments_are_assembled(server: FakeOpenAI, model: OpenAICompatLLM) -> None:
    args = {"query": '"parliament hill" shooting', "since": "2h", "from": "CBCNews"}
    server.enqueue(Reply(tool_calls=[("search_posts", args), ("get_trends", {})]))
    result = model.complete(HELLO, tools=[SEARCH], stream=True)
    assert result.finish_reason == "tool_calls"
    assert [c.name for c in result.tool_calls] == ["search_posts", "get_trends"]
    assert result.tool_calls[0].parsed() == args
    assert result.tool_calls[1].parsed() == {}
    assert result.tool_calls[0].id != result.tool_calls[1].id
    assert server.history[-1].body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "search_posts",
                "description": "Search posts.",
                "parameters": dict(SEARCH.parameters),
            },
        }
    ]


def test_tool_calls_without_streaming(server: FakeOpenAI, model: OpenAICompatLLM) -> None:
    server.enqueue(Reply(tool_calls=[("search_posts", {"query": "ottawa"})]))
    result = model.complete(HELLO, tools=[SEARCH], stream=False)
    assert [(c.name, c.parsed()) for c in result.tool_calls] == [
        ("search_posts", {"query": "ottawa"})
    ]


def test_tool_round_trip_messages_have_the_wire_shape(
    server: FakeOpenAI, model: OpenAICompatLLM
) -> None:
    call = ToolCall("call_1", "search_posts", '{"query": "ottawa"}')
    server.enqueue(Reply(text="Done."))
    conversation = [
        *HELLO,
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", '{"posts": []}', tool_call_id="call_1"),
    ]
    model.complete(conversation, tools=[SEARCH])
    sent = server.history[-1].messages
    assert sent[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "search_posts", "arguments": '{"query": "ottawa"}'},
            }
        ],
    }
    assert sent[3] == {"role": "tool", "content": '{"posts": []}', "tool_call_id": "call_1"}


def test_server_error_is_a_clear_llm_error(server: FakeOpenAI, model: OpenAICompatLLM) -> None:
    server.enqueue(Reply(status=500, error="upstream exploded"))
    with pytest.raises(LLMError) as err:
        list(model.chat(HELLO))
    assert err.value.status == 500
    assert "HTTP 500" in str(err.value) and "upstream exploded" in str(err.value)
    assert server.base_url in str(err.value)


def test_server_error_is_retried_by_the_sdk(
    server: FakeOpenAI, make: Callable[..., OpenAICompatLLM]
) -> None:
    m = make(server.base_url, model="fake-model", max_retries=1)
    server.enqueue(Reply(status=503, error="busy"), Reply(text="Recovered."))
    assert m.complete(HELLO).text == "Recovered."
    assert len(server.history) == 2


def test_error_event_mid_stream(server: FakeOpenAI, model: OpenAICompatLLM) -> None:
    server.enqueue(Reply(text="Partial answer", stream_error="model crashed"))
    with pytest.raises(LLMError, match="model crashed"):
        list(model.chat(HELLO))


def test_slow_endpoint_times_out(server: FakeOpenAI, make: Callable[..., OpenAICompatLLM]) -> None:
    m = make(server.base_url, model="fake-model", timeout=0.3, max_retries=0)
    server.enqueue(Reply(text="too late", delay=1.5))
    start = time.monotonic()
    with pytest.raises(LLMTimeout, match=r"did not answer within 0\.3s"):
        list(m.chat(HELLO))
    assert time.monotonic() - start < 1.4


def test_stalled_stream_times_out(server: FakeOpenAI, make: Callable[..., OpenAICompatLLM]) -> None:
    m = make(server.base_url, model="fake-model", timeout=0.3, max_retries=0)
    server.enqueue(Reply(text="one two three four", stall=1.5, stall_after=2))
    got: list[str] = []
    with pytest.raises(LLMTimeout):
        for event in m.chat(HELLO):
            if isinstance(event, TextDelta):
                got.append(event.text)
    assert got == ["one ", "two "]


def test_unreachable_endpoint(make: Callable[..., OpenAICompatLLM]) -> None:
    with FakeOpenAI() as gone:
        url = gone.base_url
    m = make(url, model="fake-model", timeout=1, max_retries=0)
    with pytest.raises(LLMError, match=r"cannot reach LLM endpoint .*FIRESIFT_LLM_BASE_URL"):
        list(m.chat(HELLO))


def test_unknown_model_names_the_setting(
    server: FakeOpenAI, make: Callable[..., OpenAICompatLLM]
) -> None:
    m = make(server.base_url, model="gpt-nope", max_retries=0)
    with pytest.raises(LLMError, match="FIRESIFT_LLM_MODEL") as err:
        list(m.chat(HELLO))
    assert err.value.status == 404


def test_rejected_key_names_the_setting(server: FakeOpenAI, model: OpenAICompatLLM) -> None:
    server.enqueue(Reply(status=401, error="Incorrect API key provided"))
    with pytest.raises(LLMError, match="FIRESIFT_LLM_API_KEY"):
        list(model.chat(HELLO))


def test_api_key_is_sent_as_bearer(
    server: FakeOpenAI, make: Callable[..., OpenAICompatLLM]
) -> None:
    m = make(server.base_url, model="fake-model", api_key="sk-test-123")
    server.enqueue(Reply(text="ok"))
    m.complete(HELLO)
    assert server.history[-1].headers["authorization"] == "Bearer sk-test-123"


def test_endpoint_refusing_tools_narrows_the_capability(
    make: Callable[..., OpenAICompatLLM],
) -> None:
    with FakeOpenAI(tools_supported=False) as server:
        m = make(server.base_url, model="fake-model", max_retries=0)
        assert m.supports_tools
        with pytest.raises(ToolsUnsupported, match="does not support tools"):
            list(m.chat(HELLO, tools=[SEARCH]))
        assert not m.supports_tools
        assert OpenAICompatLLM.supports_tools
        with pytest.raises(ToolsUnsupported):
            list(m.chat(HELLO, tools=[SEARCH]))
        assert len(server.history) == 1


def test_model_is_resolved_from_the_endpoint_when_it_serves_one(
    server: FakeOpenAI, make: Callable[..., OpenAICompatLLM]
) -> None:
    m = make(server.base_url, max_retries=0)
    server.enqueue(Reply(text="ok"))
    assert m.complete(HELLO).text == "ok"
    assert m.model == "fake-model"
    assert [r.path for r in server.history] == ["/v1/models", "/v1/chat/completions"]


def test_model_must_be_set_when_the_endpoint_serves_several(
    make: Callable[..., OpenAICompatLLM],
) -> None:
    with FakeOpenAI(models=("llama3", "qwen2")) as server:
        m = make(server.base_url, max_retries=0)
        with pytest.raises(LLMNotConfigured, match=r"FIRESIFT_LLM_MODEL.*llama3, qwen2"):
            list(m.chat(HELLO))


def test_from_settings(server: FakeOpenAI) -> None:
    empty = config.load(env={}, config_file=None)
    with pytest.raises(LLMNotConfigured, match="no LLM configured: set FIRESIFT_LLM_BASE_URL"):
        llm.from_settings(empty)
    with pytest.raises(ConfigError):
        OpenAICompatLLM.from_settings(empty)
    settings = config.load(
        env={
            "FIRESIFT_LLM_BASE_URL": server.base_url,
            "FIRESIFT_LLM_MODEL": "fake-model",
            "FIRESIFT_LLM_API_KEY": "sk-from-env",
        }
    )
    with llm.from_settings(settings) as m:
        assert isinstance(m, OpenAICompatLLM)
        server.enqueue(Reply(text="configured"))
        assert m.complete(HELLO).text == "configured"
    assert server.history[-1].headers["authorization"] == "Bearer sk-from-env"


class _Echo(LLM):
    name: ClassVar[str] = "echo-test"

    def execute(
        self, messages: Sequence[ChatMessage], *, tools: Sequence[ToolSpec] | None, stream: bool
    ) -> Iterator[LLMEvent]:
        yield TextDelta(f"{messages[-1].content} (stream={stream})")
        yield Finish("stop")


def test_registry_lists_builtins_and_plugins() -> None:
    assert llm.names()[0] == "openai"
    assert llm.get("openai") is OpenAICompatLLM
    llm.register(_Echo)
    try:
        assert "echo-test" in llm.names()
        with pytest.raises(ValueError, match="already registered"):
            llm.register(_Echo)
        with pytest.raises(NotFound) as err:
            llm.get("gpt")
        assert "unknown LLM backend 'gpt'" in str(err.value)
        assert "openai" in str(err.value) and "echo-test" in str(err.value)
    finally:
        llm.unregister("echo-test")
    assert "echo-test" not in llm.names()


def test_capabilities_are_checked_in_one_place() -> None:
    echo = _Echo()
    with pytest.raises(ToolsUnsupported, match="echo-test backend does not support tool calling"):
        echo.chat(HELLO, tools=[SEARCH])
    assert echo.complete(HELLO, stream=True).text == "What happened in Ottawa? (stream=False)"


def test_tool_call_arguments_must_be_an_object() -> None:
    with pytest.raises(ValueError):
        ToolCall("c", "search_posts", "[1, 2]").parsed()
    with pytest.raises(json.JSONDecodeError):
        ToolCall("c", "search_posts", "{not json").parsed()
