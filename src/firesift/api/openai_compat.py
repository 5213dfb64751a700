"""``/v1``: OpenAI Chat Completions, with answer-engine citations, over firesift's answers.

Shapes follow ``docs/api-compat.md``: the completion (or its chunks) is exactly OpenAI's, and
the grounding travels in extra top-level fields that every SDK exposes (``model_extra``):
``citations`` (post URLs in ``[n]`` order, as xAI and Perplexity return them),
``search_results`` (Perplexity's ``{title, url, date, snippet}`` plus firesift's post fields),
``evidence``, ``as_of``, ``warnings``, ``grounded``. ``message.annotations`` carries one
``url_citation`` per ``[n]`` marker, with ``start_index``/``end_index`` the marker's
character offsets (Python ``str`` indices, i.e. Unicode code points) in ``content``. When
streaming, the extras and the annotations ride on the finish chunk (the one with
``finish_reason``), whose ``delta`` stays ``{}``.

Search controls map onto :class:`~firesift.answer.model.Filters`:

- xAI ``search_parameters``: ``from_date``/``to_date`` are inclusive UTC days;
  ``max_search_results`` caps the evidence; ``sources`` of type ``x`` mean firesift's whole
  post stream (handles and like/view minimums apply), ``rss`` restricts to RSS items from the
  given links' domains, ``web``/``news`` are ignored with a warning; ``mode: "off"`` skips
  retrieval and says the answer cannot be grounded; ``return_citations: false`` drops the
  ``citations`` field.
- Perplexity: ``search_recency_filter`` counts back from ``as_of`` (or now);
  ``search_after_date_filter`` is inclusive of its day, ``search_before_date_filter``
  exclusive; ``search_domain_filter`` entries starting with ``-`` exclude a domain.
- firesift's ``as_of``: ISO 8601 or a relative time; nothing created after it is used.

Several bounds on one side intersect (the latest ``since``, the earliest ``until``).

The ``model`` picks the composer: ``firesift-<composer>`` for each composer the engine has
(``firesift-extractive`` is the default). Token usage is the LLM's own when it composed the
answer, else an estimate (four characters per
token): firesift's extractive composer has no tokenizer.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import anyio
import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from firesift.answer.model import (
    Answer,
    AnswerDelta,
    AnswerDone,
    AnswerEvent,
    Citation,
    Evidence,
    Filters,
    Message,
)
from firesift.api.errors import APIError, error_body, from_firesift
from firesift.api.routing import sse_response
from firesift.api.schemas import CHAT_BODY_LIMIT, ChatRequest, json_body, parse_instant
from firesift.errors import FiresiftError

if TYPE_CHECKING:
    from firesift.service import Service

__all__ = [
    "END",
    "MODEL_PREFIX",
    "build_filters",
    "citation_title",
    "citation_url",
    "domain_of",
    "grounding_extras",
    "json_response",
    "resolve_composer",
    "routes",
    "run_to_end",
    "search_results",
    "service_of",
    "token_usage",
    "url_annotations",
    "with_warnings",
]

log = logging.getLogger("firesift.api")

MODEL_PREFIX = "firesift-"
_MARKER = re.compile(r"\[(\d{1,4})\]")
_RECENCY = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=31),
    "year": timedelta(days=366),
}
END = object()
_STARTED = int(time.time())


def service_of(request: Request) -> Service:
    """The :class:`Service` the app serves."""
    service: Service = request.app.state.service
    return service


def _models(service: Service) -> list[str]:
    return [MODEL_PREFIX + name for name in service.composer_names()]


async def list_models(request: Request) -> Response:
    data = [
        {"id": m, "object": "model", "created": _STARTED, "owned_by": "firesift"}
        for m in _models(service_of(request))
    ]
    return json_response({"object": "list", "data": data})


def json_response(body: Any, status: int = 200) -> Response:
    """``body`` as JSON (orjson)."""
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def resolve_composer(service: Service, model: str) -> str:
    """The composer a ``model`` name picks (``firesift-<composer>``); 404 listing the models."""
    available = _models(service)
    if model in ("firesift", "default"):
        model = MODEL_PREFIX + "extractive"
    if model not in available:
        raise APIError(
            404,
            f"the model {model!r} does not exist or is not configured here; "
            f"available: {', '.join(available)}",
            param="model",
            code="model_not_found",
        )
    return model[len(MODEL_PREFIX) :]


def _day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _mdy(text: str) -> datetime:
    return datetime.strptime(text, "%m/%d/%Y").replace(tzinfo=UTC)


def domain_of(link: str) -> str:
    """The host of a link or a bare domain, without ``www.``."""
    host = urlsplit(link if "//" in link else "//" + link).hostname or link
    return host.removeprefix("www.")


def build_filters(
    req: ChatRequest, as_of: datetime | None, now: datetime
) -> tuple[Filters, list[str]]:
    """The :class:`Filters` a chat request asks for, and warnings about ignored controls."""
    warnings: list[str] = []
    since: list[datetime] = []
    until: list[datetime] = []
    include_handles: list[str] = []
    exclude_handles: list[str] = []
    include_domains: list[str] = []
    exclude_domains: list[str] = []
    sources: list[str] = []
    min_likes = min_views = 0
    max_results = 10
    sp = req.search_parameters
    if sp is not None:
        if sp.from_date:
            since.append(_day(sp.from_date))
        if sp.to_date:
            until.append(_day(sp.to_date) + timedelta(days=1))
        if sp.max_search_results is not None:
            max_results = sp.max_search_results
        social = False
        for src in sp.sources or []:
            if src.type == "x":
                social = True
                include_handles += src.included_x_handles or []
                exclude_handles += src.excluded_x_handles or []
                min_likes = max(min_likes, src.post_favorite_count or 0)
                min_views = max(min_views, src.post_view_count or 0)
            elif src.type == "rss":
                include_domains += [domain_of(link) for link in src.links]
                sources.append("rss")
            else:
                warnings.append(
                    f"search_parameters.sources type {src.type!r} is not searched: firesift "
                    "answers from its post stream only"
                )
        if social:
            sources = []
    base = as_of or now
    if req.search_recency_filter:
        since.append(base - _RECENCY[req.search_recency_filter])
    if req.search_after_date_filter:
        since.append(_mdy(req.search_after_date_filter))
    if req.search_before_date_filter:
        until.append(_mdy(req.search_before_date_filter))
    for d in req.search_domain_filter or []:
        if d.startswith("-"):
            exclude_domains.append(d[1:].lower())
        else:
            include_domains.append(d.lower())
    filters = Filters(
        since=max(since) if since else None,
        until=min(until) if until else None,
        include_handles=tuple(include_handles),
        exclude_handles=tuple(exclude_handles),
        sources=tuple(sources),
        include_domains=tuple(dict.fromkeys(include_domains)),
        exclude_domains=tuple(dict.fromkeys(exclude_domains)),
        min_likes=min_likes,
        min_views=min_views,
        max_results=max_results,
    )
    if filters.since and filters.until and filters.since >= filters.until:
        warnings.append("the date filters leave no time range: no post can match")
    return filters, warnings


# -- response shapes ------------------------------------------------------------------------


def citation_url(c: Citation, base: str) -> str:
    """The post's own URL, else its firesift API URL under ``base``."""
    return c.post.url or f"{base}api/posts/{quote(c.post.source)}/{quote(c.post.id, safe='/:')}"


def citation_title(c: Citation) -> str:
    """``Name (@handle): text`` cut to 80 characters."""
    a = c.post.author
    text = " ".join(c.post.text.split())
    head = text if len(text) <= 80 else text[:79].rstrip() + "…"
    who = f"{a.name} (@{a.handle})" if a.name and a.name != a.handle else f"@{a.handle}"
    return f"{who}: {head}"


def search_results(answer: Answer, base: str) -> list[dict[str, Any]]:
    out = []
    for c in answer.citations:
        body = c.to_dict()
        url = citation_url(c, base)
        body.update(
            title=citation_title(c),
            url=url,
            date=c.post.created_at.date().isoformat(),
            snippet=c.post.text if len(c.post.text) <= 400 else c.post.text[:399] + "…",
        )
        out.append(body)
    return out


def url_annotations(content: str, answer: Answer, base: str) -> list[dict[str, Any]]:
    """One ``url_citation`` per ``[n]`` marker in ``content``, with its exact offsets."""
    by_n = {c.n: c for c in answer.citations}
    out = []
    for m in _MARKER.finditer(content):
        c = by_n.get(int(m.group(1)))
        if c is None:
            continue
        out.append(
            {
                "type": "url_citation",
                "url_citation": {
                    "start_index": m.start(),
                    "end_index": m.end(),
                    "title": citation_title(c),
                    "url": citation_url(c, base),
                },
            }
        )
    return out


def _tokens(text: str) -> int:
    return (len(text) + 3) // 4


def token_usage(messages: Sequence[Message], content: str, answer: Answer) -> dict[str, int]:
    """The model's own token counts when an LLM composed the answer; otherwise an estimate
    (four characters per token) so clients that sum usage keep working."""
    if answer.usage and answer.usage.get("total_tokens"):
        return {
            k: answer.usage.get(k, 0)
            for k in ("prompt_tokens", "completion_tokens", "total_tokens")
        }
    prompt = sum(_tokens(m.content) + 4 for m in messages)
    completion = _tokens(content)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def grounding_extras(answer: Answer, content: str, base: str, *, citations: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if citations:
        out["citations"] = [citation_url(c, base) for c in answer.citations]
    out.update(
        search_results=search_results(answer, base),
        evidence=answer.evidence.to_dict(),
        claims=[c.to_dict() for c in answer.claims],
        claims_grouping=answer.claims_grouping,
        as_of=answer.as_of.isoformat(),
        warnings=list(answer.warnings),
        grounded=answer.grounded,
        composer=answer.composer,
    )
    return out


# -- the endpoint ---------------------------------------------------------------------------


class _Call:
    """One chat completion request, resolved: composer, conversation, filters, instant."""

    def __init__(self, service: Service, req: ChatRequest, base: str) -> None:
        self.service = service
        self.req = req
        self.base = base
        self.composer = resolve_composer(service, req.model)
        now = service.now()
        self.as_of = parse_instant(req.as_of, now=now, param="as_of")
        if self.as_of is None and req.search_recency_filter:
            now = service.engine.resolve_as_of(None)[0]
        self.filters, self.warnings = build_filters(req, self.as_of, now)
        self.messages = [
            Message("user" if m.role == "tool" else _role(m.role), m.text())
            for m in req.messages
            if m.text().strip()
        ]
        sp = req.search_parameters
        self.off = sp is not None and sp.mode == "off"
        self.citations = sp is None or sp.return_citations
        self.id = "chatcmpl-" + secrets.token_hex(12)
        self.created = int(time.time())

    def events(self) -> Iterator[AnswerEvent]:
        """The engine's stream (called on a worker thread), with request warnings added."""
        if self.off:
            yield from self._ungrounded()
            return
        for ev in self.service.stream_answer(
            self.messages, filters=self.filters, as_of=self.as_of, composer=self.composer
        ):
            if isinstance(ev, AnswerDone) and self.warnings:
                a = ev.answer
                ev = AnswerDone(with_warnings(a, self.warnings))
            yield ev

    def _ungrounded(self) -> Iterator[AnswerEvent]:
        as_of = self.as_of or self.service.now()
        text = (
            'Live search is off for this request (search_parameters.mode is "off"), so '
            "firesift has no posts to ground an answer in and cannot answer from the stream."
        )
        yield AnswerDelta(text)
        answer = Answer(
            text=text,
            citations=(),
            as_of=as_of,
            evidence=Evidence(),
            warnings=(*self.warnings, "search was off: the answer is not grounded"),
            composer=self.composer,
            grounded=False,
        )
        yield AnswerDone(answer)

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.req.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if self.req.stream_options and self.req.stream_options.include_usage:
            body["usage"] = None
        body.update(extra)
        return b"data: " + orjson.dumps(body) + b"\n\n"

    def completion(self, answer: Answer) -> dict[str, Any]:
        content = answer.text
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.req.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "refusal": None,
                        "annotations": url_annotations(content, answer, self.base),
                    },
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": token_usage(self.messages, content, answer),
            **grounding_extras(answer, content, self.base, citations=self.citations),
        }


def _role(role: str) -> str:
    return "system" if role == "developer" else role


def with_warnings(a: Answer, extra: list[str]) -> Answer:
    """``a`` with the request's ``extra`` warnings first (everything else kept)."""
    return replace(a, warnings=(*extra, *a.warnings))


async def chat_completions(request: Request) -> Response:
    service = service_of(request)
    req = await json_body(request, ChatRequest, CHAT_BODY_LIMIT)
    limiter = request.app.state.engine_limiter
    call = await anyio.to_thread.run_sync(_Call, service, req, str(request.base_url))
    it = call.events()
    try:
        if not req.stream:
            answer = await anyio.to_thread.run_sync(run_to_end, it, limiter=limiter)
            return json_response(call.completion(answer))
        first = await anyio.to_thread.run_sync(next, it, END, limiter=limiter)
    except FiresiftError as e:
        raise from_firesift(e, param="messages") from e
    return sse_response(_stream(call, it, first, request))


def run_to_end(events: Iterator[AnswerEvent]) -> Answer:
    """The answer at the end of an engine stream (the text pieces are in it)."""
    for ev in events:
        if isinstance(ev, AnswerDone):
            return ev.answer
    raise APIError(500, "the answer engine finished without an answer", code="internal_error")


async def _stream(
    call: _Call, it: Iterator[AnswerEvent], first: object, request: Request
) -> AsyncIterator[bytes]:
    limiter = request.app.state.engine_limiter
    metrics = request.app.state.metrics
    t0 = request.scope.get("firesift.t0", time.perf_counter())
    yield call.chunk(
        [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "finish_reason": None,
                "logprobs": None,
            }
        ]
    )
    parts: list[str] = []
    ev: object = first
    first_token = True
    try:
        while ev is not END:
            if isinstance(ev, AnswerDelta):
                if ev.text:
                    if first_token:
                        metrics.observe_ttft(time.perf_counter() - t0)
                        first_token = False
                    parts.append(ev.text)
                    yield call.chunk(
                        [
                            {
                                "index": 0,
                                "delta": {"content": ev.text},
                                "finish_reason": None,
                                "logprobs": None,
                            }
                        ]
                    )
            elif isinstance(ev, AnswerDone):
                content = "".join(parts)
                answer = ev.answer
                extras = grounding_extras(answer, content, call.base, citations=call.citations)
                extras["annotations"] = url_annotations(content, answer, call.base)
                yield call.chunk(
                    [{"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}], **extras
                )
                if call.req.stream_options and call.req.stream_options.include_usage:
                    yield call.chunk([], usage=token_usage(call.messages, content, answer))
                yield b"data: [DONE]\n\n"
                return
            ev = await anyio.to_thread.run_sync(next, it, END, limiter=limiter)
        raise APIError(500, "the answer engine finished without an answer", code="internal_error")
    except FiresiftError as e:
        yield _error_event(from_firesift(e))
    except APIError as e:
        yield _error_event(e)
    except Exception:
        log.exception("chat stream failed")
        yield _error_event(APIError(500, "internal server error", code="internal_error"))
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            await anyio.to_thread.run_sync(close)


def _error_event(err: APIError) -> bytes:
    return b"data: " + orjson.dumps(error_body(err.message, type=err.type, code=err.code)) + b"\n\n"


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
]
