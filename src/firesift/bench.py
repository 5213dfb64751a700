"""``firesift bench``: throughput, freshness and latency on synthetic posts.

Timing goals live here, never in unit tests. Every run reports the machine and date, and
measures its own baselines in the same run (for ingest: a naive SQLite FTS5 loader and the
bare search engine, :mod:`firesift.baselines`), so the ratios show what the pipeline costs
whatever else the machine is doing.
"""

from __future__ import annotations

import io
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from firesift.synthetic import SyntheticStream

if TYPE_CHECKING:
    from firesift.pipeline import IngestSummary, Pipeline

__all__ = ["BENCHES", "machine", "render", "run"]

Log = Callable[[str], None]
Result = dict[str, Any]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _feed_all(pipeline: Pipeline, lines: list[bytes], summary: IngestSummary) -> None:
    """Parse ``lines`` and feed them through ``pipeline``, then flush (stored, searchable)."""
    from firesift.formats.reader import Problem, read

    for item in read(io.BytesIO(b"".join(lines)), name="synthetic"):
        if isinstance(item, Problem):
            raise RuntimeError(f"synthetic post rejected: {item}")
        pipeline.feed(item.events, summary)
    pipeline.flush(summary)


def _ingest_corpus(
    db_dir: Path, lines: list[bytes], batch_size: int = 5000, *, check: bool = True
) -> float:
    """Parse, store, index and make searchable; returns the elapsed seconds."""
    from firesift.database import Database
    from firesift.pipeline import IngestSummary

    summary = IngestSummary()
    with Database(db_dir) as db:
        pipeline = db.pipeline(batch_size=batch_size, refresh_ms=1000)
        t0 = time.perf_counter()
        _feed_all(pipeline, lines, summary)
        elapsed = time.perf_counter() - t0
    if check and summary.ingested != len(lines):
        raise RuntimeError(f"expected {len(lines)} posts, ingested {summary.ingested}")
    return elapsed


def _cli_ingest(jsonl: Path, db_dir: Path, n: int) -> float:
    """``firesift ingest FILE`` as a user runs it (a new interpreter, imports included), until
    it exits with everything stored and searchable; returns the wall seconds."""
    from firesift.database import Database

    cmd = [sys.executable, "-m", "firesift.cli", "ingest", str(jsonl), "--db", str(db_dir)]
    t0 = time.perf_counter()
    done = subprocess.run([*cmd, "--json"], capture_output=True, check=True)
    elapsed = time.perf_counter() - t0
    ingested = orjson.loads(done.stdout)["ingested"]
    with Database(db_dir) as db:
        left = db.caught_up
        docs = db.index.num_docs
    if ingested != n or left or docs != n:
        raise RuntimeError(f"ingest of {n} posts: {ingested} stored, {docs} indexed, {left} left")
    return elapsed


def bench_ingest(work: Path, posts: int | None, log: Log) -> Result:
    """The CLI's ingest against the naive FTS5 loader and the bare engine, on one file, in
    interleaved rounds (medians)."""
    from firesift.baselines import bare_tantivy, fts5_loader

    n = posts or 200_000
    rounds = 3 if n <= 200_000 else 1
    log(f"ingest: writing {n:,} synthetic posts to a JSONL file")
    jsonl = work / "posts.jsonl"
    with jsonl.open("wb") as f:
        for line in SyntheticStream().lines(n):
            f.write(line)
    times: dict[str, list[float]] = {"cli": [], "fts5": [], "bare": []}
    for r in range(rounds):
        log(f"ingest: round {r + 1}/{rounds}: FTS5 loader, bare tantivy, firesift ingest")
        times["fts5"].append(fts5_loader(jsonl, work / f"fts5-{r}.sqlite3"))
        times["bare"].append(bare_tantivy(jsonl, work / f"bare-{r}"))
        times["cli"].append(_cli_ingest(jsonl, work / f"db-{r}", n))
    db_dir = work / "db-0"
    disk = _dir_bytes(db_dir)
    cli, fts5, bare = (statistics.median(times[k]) for k in ("cli", "fts5", "bare"))
    return {
        "posts": n,
        "rounds": rounds,
        "cli_posts_per_s": round(n / cli),
        "fts5_loader_posts_per_s": round(n / fts5),
        "bare_engine_posts_per_s": round(n / bare),
        "cli_vs_fts5": round(fts5 / cli, 3),
        "cli_vs_bare": round(bare / cli, 3),
        "cli_seconds": [round(t, 2) for t in times["cli"]],
        "disk_bytes_per_post": round(disk / n),
        "store_bytes_per_post": (disk - _dir_bytes(db_dir / "index")) // n,
        "cli_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }


def bench_search(work: Path, posts: int | None, log: Log) -> Result:
    from firesift.database import Database
    from firesift.search import search

    n = posts or 1_000_000
    stream = SyntheticStream()
    db_dir = work / "db"
    log(f"search: building a database of {n:,} posts")
    chunk = 200_000
    for start in range(0, n, chunk):
        _ingest_corpus(db_dir, list(stream.lines(min(chunk, n - start))))
        log(f"search: {min(n, start + chunk):,} posts")
    queries = [" ".join(stream.query_terms(1 + i % 3)) for i in range(600)]
    as_of = datetime.now(UTC)
    with Database(db_dir) as db:
        for q in queries[:50]:
            search(db, q, as_of=as_of, limit=10)
        times: list[float] = []
        hits = 0
        for q in queries:
            t0 = time.perf_counter()
            resp = search(db, q, as_of=as_of, limit=10)
            times.append((time.perf_counter() - t0) * 1000)
            hits += bool(resp.results)
        raw: list[float] = []
        from firesift.query import parse

        for q in queries:
            parsed = parse(q)
            t0 = time.perf_counter()
            db.index.search(parsed, limit=10, sort="relevance")
            raw.append((time.perf_counter() - t0) * 1000)
    return {
        "posts": n,
        "queries": len(queries),
        "queries_with_results": hits,
        "p50_ms": round(_pct(times, 0.5), 2),
        "p99_ms": round(_pct(times, 0.99), 2),
        "mean_ms": round(statistics.fmean(times), 2),
        "bare_index_p50_ms": round(_pct(raw, 0.5), 2),
        "bare_index_p99_ms": round(_pct(raw, 0.99), 2),
        "disk_bytes_per_post": round(_dir_bytes(db_dir) / n),
        "peak_rss_mib": round(_peak_rss_mib()),
    }


def bench_freshness(work: Path, posts: int | None, log: Log) -> Result:
    """Ingest at X's average rate (5,700 posts/s) and time write-accepted -> visible in search,
    sampling one post per batch and polling search for it from another thread."""
    from firesift.database import Database
    from firesift.formats.reader import Problem, read
    from firesift.pipeline import IngestSummary
    from firesift.query import parse

    rate = 5_700
    n = posts or rate * 15
    batch = 100
    stream = SyntheticStream(seed=11)
    lines = list(stream.lines(n))
    marked: list[bytes] = []
    for i, line in enumerate(lines):
        if i % batch == batch - 1:
            line = line.replace(b'"text":"', f'"text":"zqmark{i} '.encode(), 1)
        marked.append(line)
    accepted: dict[str, float] = {}
    visible: dict[str, float] = {}
    lock = threading.Lock()
    done = threading.Event()
    summary = IngestSummary()
    with Database(work / "db") as db:
        pipeline = db.pipeline(batch_size=batch, refresh_ms=50)

        def poll() -> None:
            while not done.is_set() or len(visible) < len(accepted):
                with lock:
                    pending = [t for t in accepted if t not in visible]
                for token in pending:
                    if db.index.search(parse(token), limit=1):
                        visible[token] = time.perf_counter()
                if done.is_set() and pending and time.perf_counter() - last_accept[0] > 5:
                    break
                time.sleep(0.002)

        last_accept = [time.perf_counter()]
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        t0 = time.perf_counter()
        items = read(io.BytesIO(b"".join(marked)), name="synthetic")
        for i, item in enumerate(items):
            if isinstance(item, Problem):
                raise RuntimeError(str(item))
            pipeline.feed(item.events, summary)
            if i % batch == batch - 1:
                now = time.perf_counter()
                with lock:
                    accepted[f"zqmark{i}"] = now
                last_accept[0] = now
                pipeline.maybe_commit()
                ahead = t0 + (i + 1) / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
        pipeline.flush(summary)
        elapsed = time.perf_counter() - t0
        done.set()
        poller.join(timeout=30)
    lat = [(visible[t] - accepted[t]) * 1000 for t in accepted if t in visible]
    return {
        "target_rate_posts_per_s": rate,
        "achieved_rate_posts_per_s": round(n / elapsed),
        "samples": len(accepted),
        "visible": len(lat),
        "p50_ms": round(_pct(lat, 0.5), 1),
        "p99_ms": round(_pct(lat, 0.99), 1),
        "max_ms": round(max(lat), 1) if lat else None,
    }


def _demo_lines() -> list[bytes]:
    import gzip
    import importlib.resources

    ref = importlib.resources.files("firesift.demo").joinpath("corpus.jsonl.gz")
    return gzip.decompress(ref.read_bytes()).splitlines(keepends=True)


def bench_answer(work: Path, posts: int | None, log: Log) -> Result:
    """Extractive answer latency on the demo corpus plus ``posts`` synthetic posts (1M by
    default): the shipped evaluation questions (at their as-of instants) and questions in the
    synthetic vocabulary; plus the llm composer's own overhead with an instant model."""
    from firesift.answer.engine import AnswerEngine
    from firesift.answer.llm_composer import overhead_ms
    from firesift.answer.model import Message
    from firesift.database import Database
    from firesift.evaluation.answers_eval import bench_answer as time_answers
    from firesift.evaluation.answers_eval import load_questions
    from firesift.timeparse import parse_time

    n = posts or 1_000_000
    db_dir = work / "db"
    log("answer: ingesting the demo corpus")
    demo = _demo_lines()
    _ingest_corpus(db_dir, demo, check=False)
    stream = SyntheticStream()
    chunk = 200_000
    for start in range(0, n, chunk):
        _ingest_corpus(db_dir, list(stream.lines(min(chunk, n - start))))
        log(f"answer: {min(n, start + chunk):,} synthetic posts")
    now = datetime.now(UTC)
    real = [
        (q["question"], parse_time(q["as_of"], now=now))
        for q in load_questions()
        if q.get("kind") == "answer"
    ]
    synthetic = [(" ".join(stream.query_terms(2)), None) for _ in range(len(real))]
    with Database(db_dir) as db:
        log(f"answer: {len(real) + len(synthetic)} questions")
        real_t = time_answers(db, real, warmup=3)
        synth_t = time_answers(db, synthetic, warmup=3)
        all_t = time_answers(db, [*real, *synthetic], warmup=0)
        engine = AnswerEngine(db)
        question, as_of = real[0]
        llm = overhead_ms(lambda: engine.prepare([Message("user", question)], as_of=as_of), runs=30)
    return {
        "posts": n + len(demo),
        "all_p50_ms": all_t["p50_ms"],
        "all_p99_ms": all_t["p99_ms"],
        "real_questions_p50_ms": real_t["p50_ms"],
        "real_questions_p99_ms": real_t["p99_ms"],
        "synthetic_questions_p50_ms": synth_t["p50_ms"],
        "synthetic_questions_p99_ms": synth_t["p99_ms"],
        "llm_composer_overhead_median_ms": round(llm.median_ms, 2),
        "llm_composer_overhead_p95_ms": round(llm.p95_ms, 2),
        "peak_rss_mib": round(_peak_rss_mib()),
    }


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ingest_with_trends(work: Path, lines: list[bytes], *, in_worker: bool) -> dict[str, float]:
    """Ingest ``lines`` with trend state in a worker process or inline; seconds until the
    posts are stored and indexed, until trends include them too, the tracker's CPU seconds
    (worker only) and report latencies (ms) afterwards."""
    from firesift.database import Database
    from firesift.pipeline import IngestSummary

    summary = IngestSummary()
    with Database(work, worker=in_worker) as db:
        trends = db.trends
        worker = db.worker
        if worker is not None:
            worker.sync(0)
        cpu0 = None if worker is None else _cpu_seconds(worker.pid)
        pipeline = db.pipeline(batch_size=5000, refresh_ms=1000)
        t0 = time.perf_counter()
        _feed_all(pipeline, lines, summary)
        stored = time.perf_counter() - t0
        if summary.ingested != len(lines):
            raise RuntimeError(f"expected {len(lines)} posts, ingested {summary.ingested}")
        if worker is not None:
            worker.sync(db.store.last_seq())
        current = time.perf_counter() - t0
        cpu1 = None if worker is None else _cpu_seconds(worker.pid)
        times = []
        for _ in range(50):
            t1 = time.perf_counter()
            trends.report(limit=20)
            times.append((time.perf_counter() - t1) * 1000)
    out = {"stored_s": stored, "current_s": current, "report_p50_ms": _pct(times, 0.5)}
    out["report_p99_ms"] = _pct(times, 0.99)
    if cpu0 is not None and cpu1 is not None:
        out["tracker_cpu_s"] = cpu1 - cpu0
    return out


def bench_trends(work: Path, posts: int | None, log: Log) -> Result:
    """What trend maintenance adds to ingest, for both places trend state can live (the same
    posts, plain and with trends, in the same run): ``worker`` (a child process following the
    store's change log; what the server and the demo use) and ``inline`` (a pipeline sink in
    the ingesting process). The cost counts until trends include every post, not only until
    the posts are stored; ``tracker_us_per_post`` is the worker's own CPU time, which runs on
    another core. Reports are timed after ingest (through the worker: a pipe round trip)."""
    n = posts or 200_000
    lines = list(SyntheticStream(rate_per_s=300.0).lines(n))
    log(f"trends: ingesting {n:,} posts without trends")
    plain = _ingest_corpus(work / "plain", lines)
    log("trends: with the trends worker")
    worker = _ingest_with_trends(work / "worker", lines, in_worker=True)
    log("trends: with trends inline")
    inline = _ingest_with_trends(work / "inline", lines, in_worker=False)
    cpu = worker.get("tracker_cpu_s")
    return {
        "posts": n,
        "ingest_posts_per_s_without_trends": round(n / plain),
        "worker_ingest_posts_per_s": round(n / worker["stored_s"]),
        "worker_trends_current_posts_per_s": round(n / worker["current_s"]),
        "worker_added_cost": round(worker["current_s"] / plain - 1, 3),
        "worker_tracker_us_per_post": None if cpu is None else round(cpu / n * 1e6, 1),
        "worker_report_p50_ms": round(worker["report_p50_ms"], 2),
        "worker_report_p99_ms": round(worker["report_p99_ms"], 2),
        "inline_posts_per_s": round(n / inline["current_s"]),
        "inline_added_cost": round(inline["current_s"] / plain - 1, 3),
        "inline_report_p99_ms": round(inline["report_p99_ms"], 2),
        "peak_rss_mib": round(_peak_rss_mib()),
    }


def bench_serve(work: Path, posts: int | None, log: Log) -> Result:
    from firesift.api.bench import bench_serve as run_serve

    return run_serve(work, posts, log)


def bench_source(work: Path, posts: int | None, log: Log, target: str | None = None) -> Result:
    from firesift.sources.bench import bench_source as run_source

    return run_source(work, posts, log, target)


def bench_embed(work: Path, posts: int | None, log: Log) -> Result:
    from firesift.semantic.bench import bench_embed as run_embed

    return run_embed(work, posts, log)


def bench_watches(work: Path, posts: int | None, log: Log) -> Result:
    from firesift.watches.bench import bench_watches as run_watches

    return run_watches(work, posts, log)


def bench_crash(
    work: Path, posts: int | None, log: Log, target: str | None = None, trials: int | None = None
) -> Result:
    """``kill -9`` during ingest, restart, verify (:mod:`firesift.crash`); ``target`` picks one
    kind (file, jetstream, nats), ``posts`` sizes the file trials."""
    from firesift.crash import KINDS, run_trials
    from firesift.errors import ConfigError

    if target not in (None, "all", *KINDS):
        raise ConfigError(f"unknown crash trial kind {target!r}; known: {', '.join(KINDS)}, all")
    kinds = KINDS if target in (None, "all") else (target,)
    per_kind = run_trials(work, trials or 20, log, kinds=kinds, posts=posts or 20_000)
    out: Result = {
        "trials": sum(k["trials"] for k in per_kind.values()),
        "acknowledged_posts": sum(k["acknowledged_posts"] for k in per_kind.values()),
        "lost": sum(k["lost"] for k in per_kind.values()),
        "duplicates": sum(k["duplicates"] for k in per_kind.values()),
        "failed": sum(k["failed"] for k in per_kind.values()),
    }
    for kind, figures in per_kind.items():
        out.update({f"{kind}.{k}": v for k, v in figures.items() if k != "failures" or v})
    return out


BENCHES: dict[str, Callable[..., Result]] = {
    "ingest": bench_ingest,
    "freshness": bench_freshness,
    "search": bench_search,
    "trends": bench_trends,
    "answer": bench_answer,
    "serve": bench_serve,
    "source": bench_source,
    "embed": bench_embed,
    "watches": bench_watches,
    "crash": bench_crash,
}
TARGETED = {"source", "crash"}
"""Benches that take a target (``firesift bench source jetstream``)."""
TRIALLED = {"crash"}
"""Benches that take ``--trials``."""


def run(
    what: str,
    *,
    posts: int | None,
    workdir: Path | None,
    log: Log,
    target: str | None = None,
    trials: int | None = None,
) -> Result:
    names = list(BENCHES) if what == "all" else [what]
    results: Result = {"machine": machine()}
    for name in names:
        base = Path(tempfile.mkdtemp(prefix=f"firesift-bench-{name}-", dir=workdir))
        try:
            extra: dict[str, Any] = {"target": target} if name in TARGETED else {}
            if name in TRIALLED:
                extra["trials"] = trials
            results[name] = BENCHES[name](base, posts, log, **extra)
        finally:
            shutil.rmtree(base, ignore_errors=True)
    return results


def render(results: Result) -> str:
    lines = []
    m = results["machine"]
    load = f" · load {m['load_avg_1m']}" if "load_avg_1m" in m else ""
    lines.append(f"{m['date']} · {m['cpu']} · {m['cores']} cores · {m['memory_gib']} GiB{load}")
    for name, values in results.items():
        if name == "machine":
            continue
        lines.append(f"{name}:")
        lines.extend(f"  {k:<28} {v}" for k, v in values.items())
    return "\n".join(lines)
