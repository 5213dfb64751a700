"""``firesift bench watches``: what evaluating watches adds to ingest, per post.

The same synthetic posts are ingested (parse, store, index, searchable) into fresh databases
with no evaluator, and with the evaluator as a pipeline sink over 0, 100 and 1,000 ``matches``
watches whose queries are drawn from the stream's own vocabulary the way
``firesift bench search`` draws its queries (one to three words, some ``OR``, some hashtags
and ``from:`` handles; ``min_posts`` 5 from 3 accounts in 10 minutes, so events do fire and
their writes are counted). Each configuration runs ``REPEATS`` times, interleaved, and the
median run counts (the machine is shared); the added cost compares medians of the same run.
Besides the end-to-end rate, the time spent inside the sink is measured directly
(``sink_us_per_post``), which is what the watches cost whatever else the machine does.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from firesift.store import Change
from firesift.synthetic import SyntheticStream

__all__ = ["bench_watches", "synthetic_queries"]

REPEATS = 5
COUNTS = (0, 100, 1000)


def synthetic_queries(stream: SyntheticStream, n: int, seed: int = 5) -> list[str]:
    """``n`` watch queries in the synthetic stream's vocabulary."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = stream.query_terms(1 + i % 3)
        shape = i % 10
        if shape == 7:
            out.append(f"#{rng.choice(stream.tags)}")
        elif shape == 8:
            out.append(f"from:user{rng.randrange(stream.accounts)} OR {words[0]}")
        elif shape == 9 and len(words) > 1:
            out.append(" OR ".join(words))
        else:
            out.append(" ".join(words))
    return out


class _Timed:
    """Wraps a sink and adds up the time spent in it."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.seconds = 0.0

    def apply_changes(self, changes: Sequence[Change]) -> None:
        t0 = time.perf_counter()
        self.sink.apply_changes(changes)
        self.seconds += time.perf_counter() - t0


def _run(work: Path, lines: list[bytes], queries: list[str] | None) -> dict[str, float]:
    from firesift.database import Database
    from firesift.formats.reader import Problem, read
    from firesift.pipeline import IngestSummary
    from firesift.watches.evaluate import Evaluator
    from firesift.watches.model import new_watch
    from firesift.watches.store import WatchStore

    summary = IngestSummary()
    with Database(work) as db:
        pipeline = db.pipeline(batch_size=5000, refresh_ms=1000)
        timed = None
        store = None
        if queries is not None:
            store = WatchStore(db.store)
            for q in queries:
                store.add(
                    new_watch("matches", query=q, min_posts=5, min_accounts=3, window_ms=600_000)
                )
            timed = _Timed(Evaluator(store, db.store))
            pipeline.sinks = [*pipeline.sinks, timed]
        t0 = time.perf_counter()
        for item in read(io.BytesIO(b"".join(lines)), name="synthetic"):
            if isinstance(item, Problem):
                raise RuntimeError(f"synthetic post rejected: {item}")
            pipeline.feed(item.events, summary)
        pipeline.flush(summary)
        elapsed = time.perf_counter() - t0
        events = 0
        if store is not None:
            events = sum(len(store.events(w.id, limit=1_000_000)) for w in store.all())
            store.close()
    if summary.ingested != len(lines):
        raise RuntimeError(f"expected {len(lines)} posts, ingested {summary.ingested}")
    return {"s": elapsed, "sink_s": timed.seconds if timed else 0.0, "events": events}


def bench_watches(work: Path, posts: int | None, log: Callable[[str], None]) -> dict[str, Any]:
    n = posts or 100_000
    stream = SyntheticStream(seed=13)
    lines = list(stream.lines(n))
    queries = synthetic_queries(stream, max(COUNTS))
    configs: list[tuple[str, list[str] | None]] = [("none", None)]
    configs += [(str(c), queries[:c]) for c in COUNTS]
    runs: dict[str, list[dict[str, float]]] = {}
    for rep in range(REPEATS):
        for name, qs in configs:
            what = "no evaluator" if qs is None else f"{name} watches"
            log(f"watches: run {rep + 1}/{REPEATS}, {what}")
            runs.setdefault(name, []).append(_run(work / f"{name}-{rep}", lines, qs))
    median = {name: sorted(rs, key=lambda r: r["s"])[len(rs) // 2] for name, rs in runs.items()}
    plain = median["none"]["s"]
    out: dict[str, Any] = {"posts": n, "ingest_posts_per_s_without_watches": round(n / plain)}
    for c in COUNTS:
        r = median[str(c)]
        out[f"w{c}_posts_per_s"] = round(n / r["s"])
        out[f"w{c}_added_cost"] = round(r["s"] / plain - 1, 3)
        out[f"w{c}_sink_us_per_post"] = round(r["sink_s"] / n * 1e6, 2)
        out[f"w{c}_sink_share_of_ingest"] = round(r["sink_s"] / r["s"], 3)
        out[f"w{c}_events"] = int(r["events"])
    return out
