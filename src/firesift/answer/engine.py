"""The answer engine: the one facade the CLI, the API server and the web page call.

``AnswerEngine(db).answer(messages)`` runs understand -> resolve "now" -> retrieve -> stance
-> compose -> verify:

1. :func:`~firesift.answer.understand.understand` the conversation's last question;
2. :meth:`AnswerEngine.resolve_as_of`: the caller's ``as_of``, else the wall clock, unless the
   database's newest post is older than the question's window (an archive or a replay): then
   the newest post's time, with a warning that says so;
3. :func:`~firesift.answer.retrieve.retrieve` the evidence pool (trend stories for "what is
   happening" questions, when the database has ``trends``);
4. label replies in the pool with their stance towards the post they answer (contested points),
   and run a claim check for "is it true that ..." questions. No header needs these, so when
   streaming they wait until a composer that allows it has sent its first piece
   (:meth:`~firesift.answer.composer.ComposeContext.settle`): the first words come sooner;
5. run the composer (by name, from the registry in :mod:`firesift.answer.composer`);
6. verify the result before anyone sees it: the streamed pieces concatenate to the text, and
   every citation is a pool post (so a stored post) created at or before ``as_of``. A composer
   breaking this raises :class:`~firesift.errors.FiresiftError`, never a silent bad citation.

Errors a caller can fix (an empty question, a malformed operator, an unknown composer) are
raised when :meth:`AnswerEngine.stream` is *called*, before its first event, so an SSE endpoint
can still answer with an HTTP error. One engine serves concurrent requests: it keeps no
per-request state, and the stance model is immutable once loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from firesift.answer.check import (
    CueStance,
    StancePredictor,
    as_stance,
    check_claim,
    validate_claim,
)
from firesift.answer.claims import Encode
from firesift.answer.composer import ComposeContext, Composer, composer_names, get_composer
from firesift.answer.evidence import EvidencePool
from firesift.answer.model import (
    Answer,
    AnswerDelta,
    AnswerDone,
    AnswerEvent,
    Filters,
    Message,
    Verdict,
)
from firesift.answer.retrieve import NO_FILTERS, RetrieveParams, StreamTools, retrieve, trend_report
from firesift.answer.understand import DEFAULT_WINDOW, understand
from firesift.errors import ConfigError, FiresiftError, NotFound, ParseError
from firesift.post import to_ms

if TYPE_CHECKING:
    from firesift.database import Database

__all__ = ["AnswerEngine", "now_utc"]


def now_utc() -> datetime:
    """The wall clock, timezone-aware UTC."""
    return datetime.now(UTC)


CLAIMS_ENCODERS = ("", "minilm")


def _encoder_name(name: str | None) -> str:
    """``name``, or the ``claims_encoder`` setting when ``None``; checked."""
    if name is None:
        from firesift import config

        name = config.load().claims_encoder
    name = name.strip().lower()
    if name not in CLAIMS_ENCODERS:
        raise ConfigError(f"claims_encoder must be minilm or empty, got {name!r}")
    return name


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _span(d: timedelta) -> str:
    minutes = int(d.total_seconds() // 60)
    if minutes % 1440 == 0:
        days = minutes // 1440
        return "day" if days == 1 else f"{days} days"
    if minutes % 60 == 0:
        hours = minutes // 60
        return "hour" if hours == 1 else f"{hours} hours"
    return f"{minutes} minutes"


def _filtered(filters: Filters) -> bool:
    return (
        filters.since is not None
        or filters.until is not None
        or bool(filters.include_handles or filters.exclude_handles or filters.sources)
        or bool(filters.include_domains or filters.exclude_domains or filters.query.strip())
        or filters.min_likes > 0
        or filters.min_views > 0
    )


class AnswerEngine:
    """Grounded, cited answers and claim checks over one :class:`~firesift.database.Database`.

    ``composers`` adds or replaces composers by name (e.g. a configured LLM composer, or a
    scripted fake in tests); the registered ones are available too. ``clock`` is "now" (tests
    and replays pass their own). ``stance`` overrides the stance model (default: the shipped
    :class:`~firesift.answer.stance.StanceModel`, loaded on first use).
    """

    def __init__(
        self,
        db: Database,
        *,
        composers: Mapping[str, Composer] | None = None,
        clock: Callable[[], datetime] = now_utc,
        stance: StancePredictor | None = None,
        params: RetrieveParams | None = None,
        claims_encoder: str | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.params = params or RetrieveParams()
        self._extra = dict(composers or {})
        self._stance = stance
        self._stance_note: str | None = None
        self._lock = threading.Lock()
        self._claims_encoder = None if claims_encoder is None else _encoder_name(claims_encoder)
        self._encode: Encode | None = None
        self._encode_note: str | None = None

    # --- configuration ---------------------------------------------------------------------

    def composer_names(self) -> list[str]:
        """Every composer this engine can use, sorted."""
        return sorted(set(composer_names()) | set(self._extra))

    def composer(self, name: str) -> Composer:
        """A composer called ``name``: the instance passed to the constructor, else a new one
        from the registry (one per answer, so per-answer state such as token usage stays
        separate). :class:`NotFound` lists the valid names."""
        if name in self._extra:
            return self._extra[name]
        try:
            return get_composer(name)
        except NotFound:
            valid = ", ".join(self.composer_names())
            raise NotFound(f"unknown composer {name!r}; available: {valid}") from None

    @property
    def claims_encoder(self) -> str:
        """The encoder claims are grouped with (``""``: none). Unless the constructor named
        one, the ``claims_encoder`` setting, read on first use: engines that never answer
        (claim checks, evaluations) never read the configuration for it."""
        if self._claims_encoder is None:
            self._claims_encoder = _encoder_name(None)
        return self._claims_encoder

    def encoder(self) -> tuple[Encode | None, str | None]:
        """The sentence encoder claims are grouped with (``None``: words and slots only) and,
        when one was configured but cannot load, a warning saying so. Loaded on first use."""
        if not self.claims_encoder:
            return None, None
        with self._lock:
            if self._encode is None and self._encode_note is None:
                from firesift import semantic

                try:
                    self._encode = semantic.load("full").encode
                except NotFound as exc:
                    self._encode_note = f"claims grouped by words only: {exc}"
            return self._encode, self._encode_note

    def stance_model(self) -> tuple[StancePredictor, str | None]:
        """The stance model and, when it is the lexical fallback, a warning saying so."""
        with self._lock:
            if self._stance is None:
                from firesift.answer.stance import StanceModel

                try:
                    self._stance = StanceModel.load()
                except (NotFound, ParseError) as exc:
                    self._stance = CueStance()
                    self._stance_note = f"stance model unavailable ({exc}); using keyword cues"
            return self._stance, self._stance_note

    def resolve_as_of(
        self, as_of: datetime | None, window: timedelta | None = None
    ) -> tuple[datetime, list[str]]:
        """The instant to answer for, and warnings.

        An explicit ``as_of`` is used as given. Otherwise "now" is the clock, unless the newest
        stored post is older than ``window`` (default 24 h) before it: then the database is an
        archive or a replay, and the answer is as of its newest post, with a warning.
        """
        if as_of is not None:
            return _utc(as_of), []
        now = _utc(self.clock())
        newest = self.db.store.stats().max_created_at
        if newest is None:
            return now, ["the database has no posts yet"]
        window = window or DEFAULT_WINDOW
        if _utc(newest) < now - window:
            when = _utc(newest).strftime("%Y-%m-%d %H:%M UTC")
            return _utc(newest), [
                f"no posts in the last {_span(window)}: the newest post is from {when}, so this "
                f"answers as of then (an archive or a replay)"
            ]
        return now, []

    # --- answers ---------------------------------------------------------------------------

    def answer(
        self,
        messages: Sequence[Message],
        *,
        filters: Filters = NO_FILTERS,
        as_of: datetime | None = None,
        composer: str = "extractive",
    ) -> Answer:
        """The answer to the conversation's last question (see :meth:`stream`)."""
        for event in self.stream(messages, filters=filters, as_of=as_of, composer=composer):
            if isinstance(event, AnswerDone):
                return event.answer
        raise FiresiftError(f"composer {composer!r} finished without an answer")

    def stream(
        self,
        messages: Sequence[Message],
        *,
        filters: Filters = NO_FILTERS,
        as_of: datetime | None = None,
        composer: str = "extractive",
    ) -> Iterator[AnswerEvent]:
        """``AnswerDelta`` pieces, then one ``AnswerDone``; the pieces concatenate to
        ``answer.text``. Question, filter and composer errors raise here, before any event.

        Stances and the claim check (step 4) are left to :meth:`ComposeContext.settle`, so a
        composer that settles late (the extractive one) streams its header first: they are
        needed by no header, and a claim check is a second retrieval."""
        chosen = self.composer(composer)
        ctx = self._gather(messages, filters=filters, as_of=as_of, composer=composer)
        return self._start(chosen, ctx)

    def compose(self, ctx: ComposeContext) -> Iterator[AnswerEvent]:
        """Run the composer named in ``ctx`` on a prepared context (verified events)."""
        return self._start(self.composer(ctx.composer), ctx)

    def prepare(
        self,
        messages: Sequence[Message],
        *,
        filters: Filters = NO_FILTERS,
        as_of: datetime | None = None,
        composer: str = "extractive",
    ) -> ComposeContext:
        """Steps 1-4 of an answer: the context a composer receives (evidence pool included).
        ``stream`` is ``compose(prepare(...))``; callers that show sources before the text
        (or evaluations) use the two halves."""
        ctx = self._gather(messages, filters=filters, as_of=as_of, composer=composer)
        ctx.settle()
        return ctx

    def _gather(
        self,
        messages: Sequence[Message],
        *,
        filters: Filters,
        as_of: datetime | None,
        composer: str,
    ) -> ComposeContext:
        """Steps 1-3, with step 4 pending on the context (:meth:`_settle`). A claim's own
        operators are checked here, so a malformed one still raises before any event."""
        u = understand(messages)
        resolved, warnings = self.resolve_as_of(as_of, u.time.lookback())
        report = trend_report(self.db, to_ms(resolved)) if u.intent == "happening" else None
        pool = retrieve(
            self.db, u, as_of=resolved, filters=filters, params=self.params, report=report
        )
        if not pool.hits():
            warnings.append(
                "no posts matched the filters"
                if _filtered(filters) or u.operators or u.handles
                else "no posts matched the question"
            )
        if pool.items and u.intent == "claim" and u.claim:
            validate_claim(u.claim, as_of=resolved, filters=filters)
        encode, note = self.encoder() if pool.hits() else (None, None)
        if note:
            warnings.append(note)
        return ComposeContext(
            question=u.question,
            encode=encode,
            messages=list(messages),
            understanding=u,
            as_of=resolved,
            filters=filters,
            pool=pool,
            tools=StreamTools(self.db, pool, filters),
            composer=composer,
            warnings=warnings,
            pending=self._settle if pool.items else None,
        )

    def _settle(self, ctx: ComposeContext) -> None:
        """Step 4: label the pool's replies with their stance, check the claim of an "is it
        true" question, and warn when the stance model is the keyword fallback."""
        u, pool = ctx.understanding, ctx.pool
        model, note = self.stance_model()
        self._label_replies(pool, model)
        if u.intent == "claim" and u.claim:
            ctx.verdict = check_claim(
                self.db, u.claim, as_of=ctx.as_of, model=model, filters=ctx.filters
            )
        if note and (ctx.verdict is not None or any(i.stance for i in pool)):
            ctx.warnings.append(note)

    @staticmethod
    def _label_replies(pool: EvidencePool, model: StancePredictor) -> None:
        replies = [i for i in pool if i.role == "reply" and i.parent]
        if not replies:
            return
        parents = [pool.by_key(r.parent or "") for r in replies]
        results = model.predict_many(
            [r.post.text for r in replies],
            [p.post.text if p else None for p in parents],
            [1] * len(replies),
        )
        for reply, res in zip(replies, results, strict=True):
            reply.stance = as_stance(res.label)
            reply.confidence = res.probs.get(res.label, 0.0)

    def _start(self, composer: Composer, ctx: ComposeContext) -> Iterator[AnswerEvent]:
        """Settle ``ctx`` now, unless ``composer`` does so itself after its first piece, and
        return its verified events."""
        if not composer.settles_late:
            ctx.settle()
        return self._run(composer, ctx)

    def _run(self, composer: Composer, ctx: ComposeContext) -> Iterator[AnswerEvent]:
        streamed: list[str] = []
        done = False
        for event in composer.compose(ctx):
            if done:
                raise FiresiftError(f"composer {ctx.composer!r} sent events after AnswerDone")
            if isinstance(event, AnswerDelta):
                streamed.append(event.text)
                yield event
                continue
            self._verify(event.answer, "".join(streamed), ctx)
            done = True
            yield event
        if not done:
            raise FiresiftError(f"composer {ctx.composer!r} finished without an answer")

    @staticmethod
    def _verify(answer: Answer, streamed: str, ctx: ComposeContext) -> None:
        name = ctx.composer
        if streamed != answer.text:
            raise FiresiftError(f"composer {name!r}: streamed text differs from the answer")
        as_of_ms = to_ms(ctx.as_of)
        for c in answer.citations:
            item = ctx.pool.by_key(c.post.key)
            if item is None or item.post != c.post or to_ms(c.post.created_at) > as_of_ms:
                raise FiresiftError(f"composer {name!r} cited {c.post.key}, not in its evidence")

    # --- claim checks ----------------------------------------------------------------------

    def check(
        self,
        claim: str,
        *,
        as_of: datetime | None = None,
        filters: Filters = NO_FILTERS,
    ) -> Verdict:
        """Is ``claim`` supported, disputed, unverified, or absent from the stream as of
        ``as_of``? (Decision rule: :mod:`firesift.answer.check`.)"""
        u = understand([Message("user", claim)])
        resolved, warnings = self.resolve_as_of(as_of, u.time.lookback())
        model, note = self.stance_model()
        if note:
            warnings.append(note)
        return check_claim(
            self.db, claim, as_of=resolved, model=model, filters=filters, warnings=warnings
        )
