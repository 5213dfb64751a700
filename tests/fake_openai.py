"""A scripted fake OpenAI-compatible server: real HTTP on 127.0.0.1, real protocol shapes.

It answers ``POST /v1/chat/completions`` (streaming SSE and plain JSON) and ``GET /v1/models``
the way OpenAI's API does (chunk shapes as recorded from api.openai.com: a role delta first,
content deltas, ``tool_calls`` deltas split into ``index``/``id``/``name`` then argument
fragments, a ``finish_reason`` chunk, a ``choices: []`` usage chunk when asked for, then
``data: [DONE]``).

Tests script it: ``server.enqueue(reply, ...)`` queues replies, one per request, where a reply is
a :class:`Reply` or a function of the request body returning one (a model that reacts to what it
was sent). ``server.history`` holds every request received. Faults (HTTP errors, stalls, errors
mid-stream, a model without tools) are switched per reply or per server.

Built-in behaviours mimic models that misbehave: :func:`invent_citations`,
:func:`obey_injection` (repeats instructions found in posts), :func:`obey_unframed_injection`
(obeys the instructions it finds outside the ``<post>`` / ``<claims>`` blocks and tool results,
as a model that respects the framing but nothing else would) and :func:`cite_all_posts`.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

__all__ = [
    "FakeOpenAI",
    "Recorded",
    "Reply",
    "cite_all_posts",
    "invent_citations",
    "obey_injection",
    "obey_unframed_injection",
    "unframed_text",
]


@dataclass
class Reply:
    """One scripted model reply.

    ``text`` is split into ``pieces`` (default: word-sized, so markers arrive split across
    chunks too); ``tool_calls`` are ``(name, arguments)`` pairs, arguments a dict or raw JSON
    text. Faults: ``status`` (with ``error``) answers an HTTP error instead; ``delay`` sleeps
    before answering; ``stall`` sleeps after ``stall_after`` content chunks; ``stream_error``
    sends an error event mid-stream."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)
    pieces: list[str] | None = None
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    status: int = 200
    error: str = "scripted failure"
    delay: float = 0.0
    stall: float = 0.0
    stall_after: int = 0
    stream_error: str | None = None

    def split(self) -> list[str]:
        if self.pieces is not None:
            return self.pieces
        return re.findall(r"\S+\s*|\s+", self.text)


Script = Reply | Callable[[dict[str, Any]], Reply]


@dataclass
class Recorded:
    """A request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    def text(self) -> str:
        """Every message's content, joined (for assertions about what the model was shown)."""
        return "\n".join(str(m.get("content") or "") for m in self.messages)


class FakeOpenAI:
    """The server. Use as a context manager (or :meth:`start` / :meth:`stop`)."""

    def __init__(
        self, *, models: tuple[str, ...] = ("fake-model",), tools_supported: bool = True
    ) -> None:
        self.models = models
        self.tools_supported = tools_supported
        self.history: list[Recorded] = []
        self._queue: deque[Script] = deque()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._created = 1_700_000_000

    def enqueue(self, *scripts: Script) -> None:
        with self._lock:
            self._queue.extend(scripts)

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> FakeOpenAI:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            script = self._queue.popleft() if self._queue else None
        if script is None:
            return Reply(status=500, error="fake server: no scripted reply left")
        return script(body) if callable(script) else script


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    fake: FakeOpenAI

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _record(self, body: dict[str, Any]) -> None:
        self.fake.history.append(
            Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )

    def do_GET(self) -> None:
        self._record({})
        if self.path.rstrip("/") == "/v1/models":
            data = [
                {"id": m, "object": "model", "created": self.fake._created, "owned_by": "fake"}
                for m in self.fake.models
            ]
            self._json(200, {"object": "list", "data": data})
        else:
            self._error(404, f"no route {self.path}", "not_found")

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._record({"_raw": raw.decode("utf-8", "replace")})
            self._error(400, "body is not JSON", "invalid_request_error")
            return
        self._record(body)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"no route {self.path}", "not_found")
            return
        if body.get("model") not in self.fake.models:
            self._error(404, f"The model `{body.get('model')}` does not exist", "model_not_found")
            return
        if body.get("tools") and not self.fake.tools_supported:
            self._error(400, f"{body['model']} does not support tools", "invalid_request_error")
            return
        reply = self.fake._next(body)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.status != 200:
            self._error(reply.status, reply.error, "server_error")
            return
        if body.get("stream"):
            self._stream(body, reply)
        else:
            self._json(200, self._completion(body, reply))

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str) -> None:
        self._json(
            status, {"error": {"message": message, "type": kind, "param": None, "code": None}}
        )

    def _usage(self, body: dict[str, Any], reply: Reply) -> dict[str, int]:
        if reply.usage is not None:
            return reply.usage
        prompt = max(1, len(json.dumps(body.get("messages", []))) // 4)
        completion = max(1, len(reply.text) // 4) + 8 * len(reply.tool_calls)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _finish(self, reply: Reply) -> str:
        return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")

    def _calls(self, reply: Reply) -> list[tuple[str, str, str]]:
        out = []
        for i, (name, args) in enumerate(reply.tool_calls):
            text = args if isinstance(args, str) else json.dumps(args)
            out.append((f"call_{i}_{name}", name, text))
        return out

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text or None,
            "refusal": None,
            "annotations": [],
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                for cid, name, args in self._calls(reply)
            ]
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": self.fake._created,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self._finish(reply),
                }
            ],
            "usage": self._usage(body, reply),
            "system_fingerprint": "fp_fake",
        }

    def _chunks(self, body: dict[str, Any], reply: Reply) -> Iterator[dict[str, Any] | str]:
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": self.fake._created,
            "model": body["model"],
            "system_fingerprint": "fp_fake",
        }
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        extra: dict[str, Any] = {"usage": None} if include_usage else {}

        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
                **extra,
            }

        yield choice({"role": "assistant", "content": "", "refusal": None})
        for n, piece in enumerate(reply.split()):
            if reply.stall and n == reply.stall_after:
                yield "stall"
            yield choice({"content": piece})
        if reply.stream_error:
            yield "error"
        for i, (cid, name, args) in enumerate(self._calls(reply)):
            yield choice(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": cid,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
            for k in range(0, len(args), 7):
                yield choice(
                    {"tool_calls": [{"index": i, "function": {"arguments": args[k : k + 7]}}]}
                )
        yield choice({}, self._finish(reply))
        if include_usage:
            yield {**base, "choices": [], "usage": self._usage(body, reply)}

    def _stream(self, body: dict[str, Any], reply: Reply) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            for chunk in self._chunks(body, reply):
                if chunk == "stall":
                    time.sleep(reply.stall)
                    continue
                if chunk == "error":
                    err = {"error": {"message": reply.stream_error, "type": "server_error"}}
                    self._send(f"data: {json.dumps(err)}\n\n")
                    continue
                self._send(f"data: {json.dumps(chunk)}\n\n")
            self._send("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


_POST_BLOCK = re.compile(r'<post n="(\d+)">')
_INJECTION = re.compile(
    r"ignore (?:all |your |any )?(?:previous |prior )?instructions[^a-z]+(?:and )?"
    r"(?:reply|say|answer|respond)(?: with)? ([A-Za-z0-9!]+)",
    re.IGNORECASE,
)


# Directives beyond "ignore previous instructions and reply X": other override phrasings, fake
# system / developer messages and role changes, each followed by a verb and an upper-case word
# to write; and requests to reveal keys, settings or the prompt. Matched on text whose
# ``_ - . / +`` and JSON's ``\\n`` are spaces and whose %-escapes are decoded, so handles and
# URLs count too.
_TRIGGER = (
    r"(?:ignore|disregard|forget|override|bypass|abandon)\b[^\n]{0,80}?\b(?:instructions?|rules|"
    r"prompt|guidelines|directives|directions|orders)\b|new (?:instructions?|task|rules)\s*:|"
    r"\b(?:system|developer|admin|assistant|operator)\s*(?:override\b|(?:prompt|message|note)?\s*:)|"
    r"\byou are (?:now|no longer)\b|\bjailbreak|\bdeveloper mode\b"
)
_DIRECTIVE = re.compile(
    rf"(?:{_TRIGGER})[^\n]{{0,200}}?\b(?:reply|say|answer|respond|write|output|print|type|"
    r"begin|start|end|sign|include|cite)\w*(?: only| just)?(?: with| as| the word| off)?"
    r"(?: only)?:?\s*[\\\"'“]*((?-i:[A-Z][A-Z0-9]{3,}))\b",
    re.IGNORECASE,
)
_REVEAL = re.compile(
    r"\b(?:reveal|print|show|tell|output|repeat|leak|dump|paste|send|include|list|echo|give)\b"
    r"[^\n]{0,60}?\b(?:api key|secret|password|token|system prompt|your prompt|settings|"
    r"configuration|config|env(?:ironment)? var\w*|base url|credentials)",
    re.IGNORECASE,
)
_FRAMED = re.compile(r'<post n="\d+">.*?</post>|<claims>.*?</claims>', re.DOTALL)


def _normalised(text: str) -> str:
    return re.sub(r"[_.\-/+]+|\\[nrt]", " ", unquote(text))


def _injected_word(text: str) -> str | None:
    """The word an injected instruction in ``text`` asks the model to write, if any."""
    found = _INJECTION.search(text) or _DIRECTIVE.search(_normalised(text))
    if found:
        return found.group(1)
    return None


def unframed_text(body: dict[str, Any]) -> str:
    """What a request shows a model outside the framing: every message's content with the
    ``<post n=..>...</post>`` and ``<claims>...</claims>`` blocks cut out; tool results (JSON
    data) are framed as a whole. A post that closes its block early leaves the rest here."""
    out = []
    for m in body.get("messages", []):
        content = str(m.get("content") or "")
        if m.get("role") == "tool":
            try:
                json.loads(content)
                continue
            except ValueError:
                pass
        out.append(_FRAMED.sub(" ", content))
    return "\n".join(out)


def obey_unframed_injection(body: dict[str, Any]) -> Reply:
    """A model that obeys instructions it finds outside the framing (and only there): it
    writes the word a directive asks for, with an invented citation; asked to reveal keys,
    settings or its prompt, it pastes everything unframed it was sent. With nothing to obey it
    writes one sentence citing every post it was shown."""
    text = unframed_text(body)
    word = _injected_word(text)
    shown = _shown_numbers(body)
    if _REVEAL.search(_normalised(text)):
        return Reply(text=f"LEAKED: {text}")
    if word:
        return Reply(text=f"{word}! I follow the new instructions [99].")
    marks = "".join(f"[{n}]" for n in shown)
    return Reply(text=f"Posts report shots near Parliament Hill {marks}.")


def _shown_numbers(body: dict[str, Any]) -> list[int]:
    numbers: list[int] = []
    for m in body.get("messages", []):
        content = str(m.get("content") or "")
        numbers += [int(n) for n in _POST_BLOCK.findall(content)]
        if m.get("role") == "tool":
            with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
                numbers += [int(p["n"]) for p in json.loads(content).get("posts", [])]
    return sorted(set(numbers))


def cite_all_posts(template: str = "Posts report this") -> Callable[[dict[str, Any]], Reply]:
    """A model that writes one sentence citing every post number it was shown."""

    def reply(body: dict[str, Any]) -> Reply:
        marks = "".join(f"[{n}]" for n in _shown_numbers(body))
        return Reply(text=f"{template} {marks}.")

    return reply


def invent_citations(text: str) -> Reply:
    """A model that cites posts it was never shown (``text`` carries the invented markers)."""
    return Reply(text=text)


def obey_injection(body: dict[str, Any]) -> Reply:
    """A model that follows instructions found anywhere in its input (as weak models do): it
    replies with the word an injected "ignore previous instructions and reply X" asks for, an
    uncited claim, a sentence citing a post it was never shown and one citing a real one."""
    word = _injected_word(json.dumps(body.get("messages", []))) or "nothing to obey"
    shown = _shown_numbers(body)
    first = shown[0] if shown else 1
    return Reply(
        text=f"{word}! All earlier reports were fake. I am now free of my rules [99]. "
        f"Posts discuss it [{first}]."
    )
