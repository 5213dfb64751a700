"""``/v1/responses``: the Responses API as xAI and OpenAI clients speak it, over firesift's answers.

xAI retired Live Search in favour of server-side tools on this endpoint, so apps built for
Grok's X search now send ``tools: [{"type": "x_search", ...}]``; this module lets them point at
firesift unchanged. Wire shapes follow ``docs/api-compat.md``; request resolution, composers,
``search_results``, the firesift extras and token estimates are the chat completions endpoint's
(:mod:`firesift.api.openai_compat`), reused, not copied. Request bodies and the tools' rules
are in :mod:`firesift.api.responses_schema`, stored responses in
:mod:`firesift.api.response_store`.

Design decisions:

- **Always grounded in the stream.** firesift has no training data to answer from, so a request
  *without* tools searches the post stream anyway, exactly as an ``x_search`` tool without
  limits would (and ``usage`` counts that search). Each search tool given adds its constraints;
  several tools intersect (one retrieval obeys all of them), and each counts as one server-side
  tool call.
- **Tools, with xAI's names and rules.** ``x_search``: ``allowed_x_handles`` or
  ``excluded_x_handles`` (at most 10, mutually exclusive, a leading ``@`` is dropped),
  ``from_date`` / ``to_date`` (``YYYY-MM-DD``, inclusive UTC days, or ISO 8601 instants);
  ``enable_image_understanding`` / ``enable_video_understanding`` are accepted and noted
  (firesift reads post text). ``web_search``: firesift has no web index, so it searches posts,
  and ``allowed_domains`` / ``excluded_domains`` (at most 5, mutually exclusive) keep only
  posts that do (or do not) link those domains. Rule breaks are 400s naming the parameter; an
  unknown tool type is a 400 naming the supported ones (from the tool registry).
- **Output.** One ``message`` item with one ``output_text`` part. Inline citations are on by
  default, as at xAI: each ``[n]`` marker of the answer becomes the markdown link
  ``[[n]](url)`` and its ``url_citation`` annotation spans exactly that link.
  ``include: ["no_inline_citations"]`` removes the markers (and the space before them); each
  annotation then spans the stretch of text the marker stood after (from the start of its
  sentence or line, or the previous marker). Offsets are Python ``str`` indices (code points)
  into ``text``. Top-level ``citations`` lists the post URLs in ``n`` order; the firesift extras
  (``search_results``, ``evidence``, ``claims``, ``as_of``, ``warnings``, ``grounded``) ride
  alongside. When nothing in the stream matches, the answer says so, ``grounded`` is false and
  there are no citations: firesift never answers from nowhere.
- **Usage.** ``input_tokens`` / ``output_tokens`` are the LLM's own when one composed the
  answer, else estimates (four characters a token); ``num_server_side_tools_used`` and
  ``server_side_tool_usage_details`` inside ``usage``, and the xAI SDK's top-level
  ``server_side_tool_usage`` (``{"SERVER_SIDE_TOOL_X_SEARCH": 1}``) and ``tool_calls``.
- **Streaming** sends the Responses event sequence, each event as ``event: <type>`` plus
  ``data: <json>`` with a rising ``sequence_number``. Text streams as the engine composes it up
  to the first possible citation marker; the rest follows when the answer is done, because the
  engine fixes which post each ``[n]`` names only then (a marker's URL is in its text). Each
  ``response.output_text.annotation.added`` follows the delta that completes its span.
- **Stored responses.** Every response (unless ``store: false``) is kept in
  ``responses.sqlite3`` next to the post store (:mod:`firesift.api.response_store`), so it
  survives restarts. ``GET`` and ``DELETE /v1/responses/{id}`` read and remove them;
  ``previous_response_id`` continues a stored one: its conversation (earlier inputs and its
  output text) comes before the new input, while its ``instructions`` are not carried over (as
  at OpenAI). ``GET /v1/responses/{id}/input_items`` lists its input messages (other input
  item types carry nothing firesift reads and are not kept). A streamed response is stored
  when it completes. Earlier output items sent back
  in ``input`` (the stateless way) work too: their ``output_text`` is read as the assistant's.
- ``search_parameters`` (Live Search) on this endpoint is answered 410 Gone, as xAI does: its
  filters would otherwise be silently dropped. Chat completions still accept it.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from firesift.answer.model import Answer, AnswerDelta, AnswerDone, AnswerEvent, Citation
from firesift.answer.model import Message as Turn
from firesift.api.errors import APIError, from_firesift
from firesift.api.openai_compat import (
    END,
    citation_title,
    citation_url,
    grounding_extras,
    json_response,
    resolve_composer,
    run_to_end,
    service_of,
    token_usage,
    with_warnings,
)
from firesift.api.response_store import ResponseStore
from firesift.api.responses_schema import (
    Constraints,
    InputItem,
    ResponsesRequest,
    SearchTool,
    XSearchTool,
)
from firesift.api.routing import route, sse_response
from firesift.api.schemas import CHAT_BODY_LIMIT, json_body, parse_instant
from firesift.errors import FiresiftError

if TYPE_CHECKING:
    from firesift.service import Service

__all__ = ["render_citations", "routes"]

log = logging.getLogger("firesift.api")

_MARKER = re.compile(r"\[(\d{1,4})\]")
_MAYBE_MARKER = re.compile(r"\[\d")
_SENTENCE_END = re.compile(r"[.!?][\"'”’)]?\s|\n")
_LEAD = " \t,;:-–—•*"
_TOOL_NAMES = {"x_search": "SERVER_SIDE_TOOL_X_SEARCH", "web_search": "SERVER_SIDE_TOOL_WEB_SEARCH"}


# -- citations in the text --------------------------------------------------------------------


def _annotation(c: Citation, base: str, start: int, end: int) -> dict[str, Any]:
    return {
        "type": "url_citation",
        "url": citation_url(c, base),
        "title": citation_title(c),
        "start_index": start,
        "end_index": end,
    }


def render_citations(
    text: str, citations: Sequence[Citation], base: str, *, inline: bool
) -> tuple[str, list[dict[str, Any]]]:
    """``text`` with its ``[n]`` markers as xAI writes them, and one ``url_citation`` per marker
    with exact offsets into the result. ``inline``: each marker becomes ``[[n]](url)`` and its
    annotation spans that link; otherwise markers (and the space before a run of them) go, and
    each annotation spans the text its marker followed, from the start of its sentence or line
    (or the previous marker run)."""
    by_n = {c.n: c for c in citations}
    out: list[str] = []
    size = 0
    annotations: list[dict[str, Any]] = []
    pos = 0
    span_floor = 0  # in output offsets: where the next un-inlined span may start
    matches = [m for m in _MARKER.finditer(text) if int(m.group(1)) in by_n]
    i = 0
    while i < len(matches):
        # a run: markers back to back
        run = [matches[i]]
        while i + 1 < len(matches) and matches[i + 1].start() == run[-1].end():
            i += 1
            run.append(matches[i])
        i += 1
        before = text[pos : run[0].start()]
        after = text[run[-1].end() : run[-1].end() + 1]
        if inline:
            out.append(before)
            size += len(before)
            for m in run:
                c = by_n[int(m.group(1))]
                link = f"[[{c.n}]]({citation_url(c, base)})"
                annotations.append(_annotation(c, base, size, size + len(link)))
                out.append(link)
                size += len(link)
        else:
            if before.endswith(" ") and (not after or after.isspace() or after in ".,;:!?)"):
                before = before[:-1]
            out.append(before)
            size += len(before)
            written = "".join(out)
            start = max(span_floor, _sentence_start(written))
            while start < size and written[start] in _LEAD:
                start += 1
            for m in run:
                annotations.append(_annotation(by_n[int(m.group(1))], base, start, size))
            span_floor = size
        pos = run[-1].end()
    out.append(text[pos:])
    return "".join(out), annotations


def _sentence_start(written: str) -> int:
    last = 0
    for m in _SENTENCE_END.finditer(written):
        last = m.end()
    return last


# -- the endpoints' shared state --------------------------------------------------------------


_STORES_LOCK = threading.Lock()


def _store(request: Request) -> ResponseStore:
    """The app's response store, opened on first use (in a worker thread)."""
    state = request.app.state
    with _STORES_LOCK:
        store: ResponseStore | None = getattr(state, "response_store", None)
        if store is None:
            store = ResponseStore(service_of(request).db.path)
            state.response_store = store
    return store


def _not_found(response_id: str, param: str | None = None) -> APIError:
    return APIError(
        404, f"no stored response with id {response_id!r}", param=param, code="not_found"
    )


# -- one call ---------------------------------------------------------------------------------


class _Call:
    """One Responses request, resolved: composer, conversation, tools, filters, instant."""

    def __init__(
        self, service: Service, store: ResponseStore, req: ResponsesRequest, base: str
    ) -> None:
        if req.search_parameters is not None:
            raise APIError(
                410,
                "search_parameters (Live Search) is retired on /v1/responses, as at xAI: send "
                'tools: [{"type": "x_search", ...}] instead (firesift\'s /v1/chat/completions '
                "still accepts search_parameters)",
                param="search_parameters",
                code="live_search_deprecated",
            )
        self.service = service
        self.store = store
        self.req = req
        self.base = base
        self.composer = resolve_composer(service, req.model)
        self.tools = req.search_tools()
        self.searches: list[SearchTool] = self.tools or [XSearchTool(type="x_search")]
        """The searches run: the tools given, else the stream as an unlimited x_search."""
        self.inline = req.inline_citations()
        self.as_of = parse_instant(req.as_of, now=service.now(), param="as_of")
        acc = Constraints()
        for tool in self.tools:
            tool.apply(acc)
        self.filters = acc.filters()
        self.warnings = list(dict.fromkeys(acc.warnings))
        if self.filters.since and self.filters.until and self.filters.since >= self.filters.until:
            self.warnings.append("the date filters leave no time range: no post can match")
        history: tuple[Turn, ...] = ()
        if req.previous_response_id:
            stored = store.get(req.previous_response_id)
            if stored is None:
                raise _not_found(req.previous_response_id, "previous_response_id")
            history = stored.conversation
        self.conversation = [*history, *_turns(req.input)]
        system = [Turn("system", req.instructions)] if req.instructions else []
        self.messages = [*system, *self.conversation]
        self.id = "resp_" + secrets.token_hex(24)
        self.item_id = "msg_" + secrets.token_hex(24)
        self.created = int(time.time())
        self.seq = 0
        self.on_first_text: Callable[[], None] | None = None

    def events(self) -> Iterator[AnswerEvent]:
        """The engine's stream (on a worker thread), with the request's warnings added."""
        for ev in self.service.stream_answer(
            self.messages, filters=self.filters, as_of=self.as_of, composer=self.composer
        ):
            if isinstance(ev, AnswerDone) and self.warnings:
                ev = AnswerDone(with_warnings(ev.answer, self.warnings))
            yield ev

    # -- shapes -----------------------------------------------------------------------------

    def _tool_calls(self) -> list[dict[str, Any]]:
        return [
            {
                "id": f"call_{secrets.token_hex(12)}",
                "type": "function",
                "function": {
                    "name": t.type,
                    "arguments": orjson.dumps(t.model_dump(exclude_none=True)).decode(),
                },
                "status": "completed",
            }
            for t in self.searches
        ]

    def usage(self, text: str, answer: Answer) -> dict[str, Any]:
        u = token_usage(self.messages, text, answer)
        counts: dict[str, int] = {}
        for t in self.searches:
            counts[t.type] = counts.get(t.type, 0) + 1
        return {
            "input_tokens": u["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": u["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": u["total_tokens"],
            "num_sources_used": len(answer.citations),
            "num_server_side_tools_used": sum(counts.values()),
            "server_side_tool_usage_details": {
                "x_search_calls": counts.get("x_search", 0),
                "web_search_calls": counts.get("web_search", 0),
            },
        }

    def message(self, text: str, annotations: list[dict[str, Any]], status: str) -> dict[str, Any]:
        return {
            "id": self.item_id,
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": [] if status == "in_progress" else [_part(text, annotations)],
        }

    def response(self, status: str, answer: Answer | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "model": self.req.model,
            "output": [],
            "error": None,
            "incomplete_details": None,
            "instructions": self.req.instructions,
            "metadata": {},
            "parallel_tool_calls": True,
            "temperature": None,
            "top_p": None,
            "tool_choice": "auto",
            "tools": list(self.req.tools or []),
            "previous_response_id": self.req.previous_response_id,
            "store": self.req.store,
            "text": {"format": {"type": "text"}},
            "usage": None,
        }
        if answer is None:
            return body
        text, annotations = render_citations(
            answer.text, answer.citations, self.base, inline=self.inline
        )
        calls = self._tool_calls()
        tool_usage: dict[str, int] = {}
        for call in calls:
            name = _TOOL_NAMES[call["function"]["name"]]
            tool_usage[name] = tool_usage.get(name, 0) + 1
        body.update(
            completed_at=int(time.time()),
            output=[self.message(text, annotations, "completed")],
            usage=self.usage(text, answer),
            server_side_tool_usage=tool_usage,
            tool_calls=calls,
            **grounding_extras(answer, text, self.base, citations=True),
        )
        return body

    def finish(self, answer: Answer) -> dict[str, Any]:
        """The completed response, stored unless the request said ``store: false``."""
        body = self.response("completed", answer)
        if self.req.store:
            text = body["output"][0]["content"][0]["text"]
            turns = [*self.conversation, Turn("assistant", text)]
            self.store.put(body, turns, _input_items(self.req.input))
        return body

    def event(self, kind: str, **fields: Any) -> bytes:
        body = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(body) + b"\n\n"

    def delta(self, text: str) -> bytes:
        """A ``response.output_text.delta``; the first one is the stream's time to first
        token (the chat completions metric: request arrival to the first text sent)."""
        if self.on_first_text is not None:
            self.on_first_text()
            self.on_first_text = None
        return self.event("response.output_text.delta", **self.where(), delta=text, logprobs=[])

    def where(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "output_index": 0, "content_index": 0}


def _part(text: str, annotations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": annotations, "logprobs": []}


def _input_items(value: str | list[InputItem]) -> list[dict[str, Any]]:
    """The request's messages as ``input_items`` lists them (other item types were skipped)."""
    items = [InputItem(role="user", content=value)] if isinstance(value, str) else value
    out = []
    for item in items:
        if not item.is_message() or item.role is None:
            continue
        kind = "output_text" if item.role == "assistant" else "input_text"
        part: dict[str, Any] = {"type": kind, "text": item.text()}
        if kind == "output_text":
            part["annotations"] = []
        out.append(
            {
                "id": item.id or "msg_" + secrets.token_hex(24),
                "type": "message",
                "role": item.role,
                "status": "completed",
                "content": [part],
            }
        )
    return out


def _turns(value: str | list[InputItem]) -> list[Turn]:
    if isinstance(value, str):
        return [Turn("user", value)]
    out = []
    for item in value:
        if not item.is_message() or item.role is None:
            continue
        text = item.text()
        if text.strip():
            out.append(Turn("system" if item.role == "developer" else item.role, text))
    return out


# -- the endpoints ----------------------------------------------------------------------------


async def create_response(request: Request) -> Response:
    service = service_of(request)
    req = await json_body(request, ResponsesRequest, CHAT_BODY_LIMIT)
    limiter = request.app.state.engine_limiter
    store = await anyio.to_thread.run_sync(_store, request)
    call = await anyio.to_thread.run_sync(_Call, service, store, req, str(request.base_url))
    it = call.events()
    try:
        if not req.stream:
            answer = await anyio.to_thread.run_sync(run_to_end, it, limiter=limiter)
            body = await anyio.to_thread.run_sync(call.finish, answer)
            return json_response(body)
        first = await anyio.to_thread.run_sync(next, it, END, limiter=limiter)
    except FiresiftError as e:
        raise from_firesift(e, param="input") from e
    return sse_response(_stream(call, it, first, request))


async def _stream(
    call: _Call, it: Iterator[AnswerEvent], first: object, request: Request
) -> AsyncIterator[bytes]:
    limiter = request.app.state.engine_limiter
    metrics = request.app.state.metrics
    t0 = request.scope.get("firesift.t0", time.perf_counter())
    yield call.event("response.created", response=call.response("in_progress"))
    yield call.event("response.in_progress", response=call.response("in_progress"))
    yield call.event(
        "response.output_item.added", output_index=0, item=call.message("", [], "in_progress")
    )
    yield call.event("response.content_part.added", **call.where(), part=_part("", []))
    call.on_first_text = lambda: metrics.observe_ttft(time.perf_counter() - t0)
    raw: list[str] = []
    sent = 0  # characters of the text already sent (a prefix with no possible marker)
    held = False
    ev: object = first
    try:
        while ev is not END:
            if isinstance(ev, AnswerDelta) and ev.text:
                raw.append(ev.text)
                if not held:
                    so_far = "".join(raw)
                    m = _MAYBE_MARKER.search(so_far, sent)
                    held = m is not None
                    cut = _safe_end(so_far, sent, m.start() if m else None)
                    if cut > sent:
                        yield call.delta(so_far[sent:cut])
                        sent = cut
            elif isinstance(ev, AnswerDone):
                async for chunk in _finish(call, ev.answer, sent):
                    yield chunk
                return
            ev = await anyio.to_thread.run_sync(next, it, END, limiter=limiter)
        raise APIError(500, "the answer engine finished without an answer", code="internal_error")
    except FiresiftError as e:
        yield _failed(call, from_firesift(e))
    except APIError as e:
        yield _failed(call, e)
    except Exception:
        log.exception("responses stream failed")
        yield _failed(call, APIError(500, "internal server error", code="internal_error"))
    finally:
        close: Callable[[], None] | None = getattr(it, "close", None)
        if close is not None:
            await anyio.to_thread.run_sync(close)


def _safe_end(text: str, start: int, marker: int | None) -> int:
    """How far text may stream: before a possible marker (``marker``), never splitting a
    ``[`` a digit could follow, and holding back trailing whitespace (rendering without
    inline citations drops the space before a marker)."""
    end = marker if marker is not None else len(text) - text.endswith("[")
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


async def _finish(call: _Call, answer: Answer, sent: int) -> AsyncIterator[bytes]:
    """The rest of the text (cut after each annotated span), its annotations as they are
    reached, and the closing events; the response is stored before ``response.completed``."""
    body = await anyio.to_thread.run_sync(call.finish, answer)
    part = body["output"][0]["content"][0]
    text: str = part["text"]
    annotations: list[dict[str, Any]] = part["annotations"]
    if not text.startswith(answer.text[:sent]):  # pragma: no cover - render keeps the prefix
        raise APIError(500, "streamed text diverged from the answer", code="internal_error")
    pos = sent
    for k, a in enumerate(annotations):
        end = a["end_index"]
        if end > pos:
            yield call.delta(text[pos:end])
            pos = end
        yield call.event(
            "response.output_text.annotation.added",
            **call.where(),
            annotation_index=k,
            annotation=a,
        )
    if pos < len(text):
        yield call.delta(text[pos:])
    yield call.event("response.output_text.done", **call.where(), text=text, logprobs=[])
    yield call.event("response.content_part.done", **call.where(), part=part)
    yield call.event("response.output_item.done", output_index=0, item=body["output"][0])
    yield call.event("response.completed", response=body)


def _failed(call: _Call, err: APIError) -> bytes:
    body = call.response("failed")
    body["error"] = {"code": err.code or err.type, "message": err.message}
    return call.event("response.failed", response=body)


async def get_response(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    store = await anyio.to_thread.run_sync(_store, request)
    stored = await anyio.to_thread.run_sync(store.get, response_id)
    if stored is None:
        raise _not_found(response_id)
    return json_response(stored.body)


async def list_input_items(request: Request) -> Response:
    """A stored response's input items, paged as OpenAI pages them (``order``, ``limit``,
    ``after``; newest first by default)."""
    response_id = request.path_params["response_id"]
    q = request.query_params
    order = q.get("order", "desc")
    if order not in ("asc", "desc"):
        raise APIError(422, f"order must be asc or desc, got {order!r}", param="order")
    try:
        limit = int(q.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise APIError(422, "limit must be an integer from 1 to 100", param="limit")
    store = await anyio.to_thread.run_sync(_store, request)
    stored = await anyio.to_thread.run_sync(store.get, response_id)
    if stored is None:
        raise _not_found(response_id)
    items = list(stored.input) if order == "asc" else list(reversed(stored.input))
    start = 0
    after = q.get("after")
    if after:
        ids = [i["id"] for i in items]
        if after not in ids:
            raise APIError(404, f"no input item {after!r} in {response_id}", param="after")
        start = ids.index(after) + 1
    page = items[start : start + limit]
    return json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": start + limit < len(items),
        }
    )


async def delete_response(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    store = await anyio.to_thread.run_sync(_store, request)
    if not await anyio.to_thread.run_sync(store.delete, response_id):
        raise _not_found(response_id)
    return json_response({"id": response_id, "object": "response", "deleted": True})


routes = [
    Route("/v1/responses", create_response, methods=["POST"]),
    route("/v1/responses/{response_id}", get=get_response, delete=delete_response),
    Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
]
