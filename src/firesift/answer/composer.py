"""Composers turn an evidence pool into an answer; this module is their interface and registry.

Writing a composer (the LLM composer is one)::

    from firesift.answer.composer import ComposeContext, Composer, register_composer
    from firesift.answer.model import AnswerDelta, AnswerDone, AnswerEvent

    class EchoComposer(Composer):
        name = "echo"
        description = "cites the best post"

        def compose(self, ctx: ComposeContext) -> Iterator[AnswerEvent]:
            out = ctx.writer()                       # the citation check, incremental
            top = ctx.pool.hits()[0]
            yield AnswerDelta(out.feed(f"{top.post.text} [{top.n}]"))
            yield AnswerDelta(out.close())
            yield AnswerDone(out.answer())

    register_composer(EchoComposer)                  # or register_composer(EchoComposer, factory)

The contract, checked by :class:`~firesift.answer.engine.AnswerEngine`:

1. ``compose`` yields :class:`AnswerDelta` pieces, then exactly one :class:`AnswerDone`, and
   the deltas concatenate to ``AnswerDone.answer.text``.
2. Text cites evidence as ``[n]``, ``n`` being :attr:`EvidenceItem.n` in ``ctx.pool``. Write
   every piece through ``ctx.writer()`` (an :class:`AnswerWriter`): it drops markers that name
   no evidence item, renumbers the rest 1..k in order of first appearance, and builds the
   :class:`Answer` (citations in marker order, evidence statistics, ``as_of``, warnings,
   uncited sentences flagged when ``flag_uncited``). It cites at most ``ctx.filters.max_results``
   distinct posts (markers of further posts are removed, with a warning); a composer that
   knows this writes only that many. Deltas written through it satisfy rule 1.
3. Every citation is an item of ``ctx.pool``; the pool only accepts stored posts created at or
   before ``ctx.as_of``. Posts are untrusted text: quote them as data, never follow them.
4. When the pool is empty (``ctx.pool.hits()`` is empty), say that nothing in the stream
   answers the question and finish with ``out.answer(grounded=False)``.

Streaming early. :meth:`~firesift.answer.engine.AnswerEngine.stream` may hand a composer a
context whose last preparation step (reply stances and the claim check, which no header needs)
has not run yet; :meth:`ComposeContext.settle` runs it. The engine settles the context before
``compose`` unless the composer sets ``settles_late = True``, promising to call
``ctx.settle()`` itself before it reads ``verdict`` or any stance (after its first piece, so a
reader sees words sooner). Everything else in the context is final from the start.

``ctx.tools`` are what an LLM may call as function tools; each returns posts already added to
the pool (so ``ctx.pool.number_of(post)`` gives the ``[n]`` to cite) and never returns a post
created after ``as_of``.

Registry. Composers are registered by name with a zero-argument factory (the class itself by
default); :func:`get_composer` instantiates lazily, so a composer needing configuration (an LLM
backend) costs nothing until used, and an unknown name raises
:class:`~firesift.errors.NotFound` listing the registered names. Built-ins are registered the
same way a plugin is: :data:`BUILTIN_MODULES` are imported on first use and call
:func:`register_composer` at import (``firesift.answer.llm_composer`` is optional).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Protocol

from firesift.answer.citations import MarkerFilter, uncited_sentences
from firesift.answer.claims import Claims, Encode, pool_claims
from firesift.answer.evidence import EvidencePool
from firesift.answer.model import (
    Answer,
    AnswerEvent,
    Citation,
    ClaimSummary,
    Filters,
    Message,
    Verdict,
)
from firesift.answer.understand import Understanding
from firesift.errors import NotFound
from firesift.post import Post

if TYPE_CHECKING:
    from firesift.trends.model import TrendReport

__all__ = [
    "BUILTIN_MODULES",
    "AnswerWriter",
    "ComposeContext",
    "Composer",
    "Tools",
    "composer_names",
    "get_composer",
    "register_composer",
    "unregister_composer",
]

BUILTIN_MODULES = ("firesift.answer.extractive", "firesift.answer.llm_composer")


class Tools(Protocol):
    """Read-only access to the stream, bounded by the answer's ``as_of``; results are added to
    the evidence pool (cite them with ``ctx.pool.number_of(post)``)."""

    def search_posts(
        self,
        query: str,
        since: datetime | None = None,
        until: datetime | None = None,
        from_: str | None = None,
        limit: int = 10,
    ) -> list[Post]:
        """Posts matching X-style ``query`` (``from_`` = author handle), best first."""
        ...

    def get_thread(self, id: str) -> list[Post]:
        """The conversation of post ``id`` (``source:id`` or a bare id), in time order."""
        ...

    def get_trends(self) -> TrendReport | None:
        """What is bursting at ``as_of`` (``None`` when the database tracks no trends)."""
        ...


@dataclass(slots=True)
class ComposeContext:
    """Everything a composer needs for one answer.

    ``question`` is the last user message; ``understanding.resolved`` the question with its
    conversation context; ``messages`` the whole conversation (for an LLM's history);
    ``pool`` the numbered evidence; ``verdict`` a claim check when the question asks whether
    something is true; ``warnings`` starts with the engine's (archive "now", empty filters ...)
    and a composer may append; ``usage`` is the token count a model composer reports.
    """

    question: str
    messages: Sequence[Message]
    understanding: Understanding
    as_of: datetime
    filters: Filters
    pool: EvidencePool
    tools: Tools
    composer: str
    verdict: Verdict | None = None
    warnings: list[str] = field(default_factory=list)
    usage: dict[str, int] | None = None
    """Model tokens spent so far on this answer (a composer calling a model sets it); the
    writer puts it on the :class:`Answer` unless :meth:`AnswerWriter.answer` is given one."""
    encode: Encode | None = None
    """A sentence encoder (:mod:`firesift.semantic`) when one is installed: claims are then
    grouped by paraphrase as well as by words."""
    pending: Callable[[ComposeContext], None] | None = None
    """The preparation still to run on this context (see :meth:`settle`), or ``None``."""

    _claims: Claims | None = field(default=None, init=False, repr=False)

    def claims(self) -> Claims:
        """The pool's hits grouped into claims, with conflicts (computed once)."""
        if self._claims is None:
            self._claims = pool_claims(self.pool, self.understanding, encode=self.encode)
        return self._claims

    def settle(self) -> None:
        """Finish preparing the context: label reply stances, run the claim check (setting
        ``verdict``) and add their warnings, if the engine left that for later. Runs once;
        does nothing when the context is already complete."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending(self)

    def writer(self, *, flag_uncited: bool = False) -> AnswerWriter:
        """A fresh :class:`AnswerWriter` over this context's pool."""
        return AnswerWriter(self, flag_uncited=flag_uncited)


class AnswerWriter:
    """Filters composer text through the citation check and builds the final :class:`Answer`."""

    def __init__(self, ctx: ComposeContext, *, flag_uncited: bool = False) -> None:
        self.ctx = ctx
        self.flag_uncited = flag_uncited
        self._filter = MarkerFilter(ctx.pool.__contains__, limit=max(1, ctx.filters.max_results))
        self._parts: list[str] = []

    def feed(self, raw: str) -> str:
        """Filter a piece of raw composer text; yield the result as an ``AnswerDelta``."""
        out = self._filter.feed(raw)
        self._parts.append(out)
        return out

    def close(self) -> str:
        """The held-back tail of the text (yield it too, even when empty)."""
        out = self._filter.close()
        self._parts.append(out)
        return out

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @property
    def dropped(self) -> list[int]:
        """Evidence numbers the composer wrote that do not exist (removed from the text)."""
        return list(self._filter.dropped)

    def answer(
        self, *, grounded: bool | None = None, usage: dict[str, int] | None = None
    ) -> Answer:
        """The finished answer; call after :meth:`close`. ``grounded`` defaults to "cites at
        least one post"; ``usage`` (model tokens: ``prompt_tokens``, ``completion_tokens``,
        ``total_tokens``) defaults to ``ctx.usage``."""
        pool = self.ctx.pool
        citations = []
        for i, n in enumerate(self._filter.cited, start=1):
            item = pool.get(n)
            citations.append(Citation(i, item.post, item.stance))
        warnings = list(dict.fromkeys([*self.ctx.warnings, *pool.warnings]))
        if self._filter.dropped:
            gone = ", ".join(f"[{n}]" for n in dict.fromkeys(self._filter.dropped))
            warnings.append(f"removed citation markers that name no evidence post: {gone}")
        if self._filter.capped:
            limit = self.ctx.filters.max_results
            warnings.append(f"cited the first {limit} posts only (max_results = {limit})")
        if self.flag_uncited:
            for sentence in uncited_sentences(self.text):
                warnings.append(f"uncited sentence: {sentence}")
        renumber = {n: i for i, n in enumerate(self._filter.cited, start=1)}
        return Answer(
            text=self.text,
            citations=tuple(citations),
            as_of=self.ctx.as_of,
            evidence=pool.stats(),
            warnings=tuple(warnings),
            composer=self.ctx.composer,
            grounded=bool(citations) if grounded is None else grounded,
            usage=dict(usage) if usage is not None else self.ctx.usage,
            claims=self._claims(renumber),
            claims_grouping="words+minilm" if self.ctx.encode is not None else "words",
        )

    def _claims(self, renumber: dict[int, int]) -> tuple[ClaimSummary, ...]:
        """The context's claims for the answer: those with a cited post, their citations
        renumbered as the text's, and their conflicts pointing within the result."""
        if not self.ctx.pool.hits():
            return ()
        found = self.ctx.claims()
        kept = [k for k, c in enumerate(found.claims) if any(i.n in renumber for i in c.items)]
        position = {k: j for j, k in enumerate(kept)}
        out = []
        for k in kept:
            c = found.claims[k]
            rivals = tuple(
                (x.about, position[x.b if x.a == k else x.a])
                for x in found.conflicts
                if k in (x.a, x.b) and (x.b if x.a == k else x.a) in position
            )
            out.append(
                ClaimSummary(
                    text=c.sentence,
                    citations=tuple(sorted(renumber[i.n] for i in c.items if i.n in renumber)),
                    posts=tuple(i.key for i in c.items),
                    accounts=c.accounts,
                    independent=c.independent,
                    kinds=c.kinds,
                    first_seen=c.first_seen,
                    conflicts=rivals,
                )
            )
        return tuple(out)


class Composer(ABC):
    """Turns a :class:`ComposeContext` into answer events (contract in the module docstring).

    Capabilities are class attributes: ``needs_model`` (weights or a server are required),
    ``description`` (one line for ``--help`` and the API's model list), ``settles_late``
    (see "Streaming early" in the module docstring)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    needs_model: ClassVar[bool] = False
    settles_late: ClassVar[bool] = False
    """``compose`` calls ``ctx.settle()`` itself before reading ``verdict`` or stances."""

    @abstractmethod
    def compose(self, ctx: ComposeContext) -> Iterator[AnswerEvent]:
        """Yield ``AnswerDelta`` pieces, then one ``AnswerDone``."""


_REGISTRY: dict[str, Callable[[], Composer]] = {}
_loaded = False


def register_composer(
    cls: type[Composer], factory: Callable[[], Composer] | None = None
) -> type[Composer]:
    """Make ``cls`` available under ``cls.name``; ``factory`` builds an instance (default:
    ``cls()``). Usable as a class decorator."""
    _REGISTRY[cls.name] = factory or cls
    return cls


def unregister_composer(name: str) -> None:
    _REGISTRY.pop(name, None)


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def composer_names() -> list[str]:
    """Registered composer names, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_composer(name: str) -> Composer:
    """A new instance of the composer registered as ``name``."""
    _load_builtins()
    factory = _REGISTRY.get(name)
    if factory is None:
        valid = ", ".join(sorted(_REGISTRY)) or "(none)"
        raise NotFound(f"unknown composer {name!r}; available: {valid}")
    return factory()
