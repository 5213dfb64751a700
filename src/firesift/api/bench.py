"""``firesift bench serve``: the API under load, measured from outside the server process.

Set-up: a data directory with the bundled demo corpus (real posts), served by
``python -m firesift.api.server`` in a subprocess on 127.0.0.1, so the load generator never
shares the server's interpreter (and GIL) and the numbers are what a client sees.

Load, for ``duration_s`` seconds at once:

- ``clients`` concurrent streaming chat clients (extractive composer), each asking the next
  of a few real questions ``think_s`` (0.5x-1.5x, random) after its previous answer ended, as
  a reader does; ``think_s=0`` is a closed loop that measures saturation instead. Time to first
  token is from sending the request to the first non-empty content delta;
- ingest at ``rate`` posts/s through ``POST /api/ingest`` (batches every 50 ms) of synthetic
  posts (:mod:`firesift.synthetic`) timed just after the corpus, so the trend state moves
  forward minute by minute as on a live stream;
- one ``/api/live`` reader with no filter, counting the ``post`` events it receives: keeping
  up means it receives every post ingested (less anything reported in ``lag`` notes).

Returns the measured numbers (``firesift bench serve`` renders them); goals: no errors, p99
time to first token <= 300 ms, live events == posts ingested.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import importlib.resources
import io
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

__all__ = ["bench_serve"]

Log = Callable[[str], None]

QUESTIONS = (
    "What happened at the war memorial in Ottawa?",
    "Is the Ottawa gunman dead?",
    "What is happening in Ferguson?",
    "Were hostages taken in Sydney?",
    "What do people say about Charlie Hebdo?",
    "Did Prince play a secret concert in Toronto?",
)
_SERVING = re.compile(r"serving on (\S+)")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _prepare(db: Path) -> Any:
    from firesift.database import Database
    from firesift.formats.reader import Problem, read
    from firesift.pipeline import IngestSummary

    raw = importlib.resources.files("firesift.demo").joinpath("corpus.jsonl.gz").read_bytes()
    summary = IngestSummary()
    with Database(db) as database:
        pipeline = database.pipeline()
        for item in read(io.BytesIO(gzip.decompress(raw)), name="corpus"):
            if not isinstance(item, Problem):
                pipeline.feed(item.events, summary)
        pipeline.flush(summary)
        return database.store.stats().max_created_at


def _start_server(db: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIRESIFT_")}
    out = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "firesift.api.server", "--db", str(db), "--port", "0"],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
    )
    out.close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        m = _SERVING.search(log_path.read_text(errors="replace"))
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start:\n" + log_path.read_text(errors="replace"))


async def _chat_client(
    c: httpx.AsyncClient,
    i: int,
    until: float,
    think_s: float,
    ttft: list[float],
    stats: dict[str, int],
) -> None:
    rng = random.Random(i)
    n = i
    await asyncio.sleep(rng.uniform(0, think_s))
    while time.perf_counter() < until:
        if n > i:
            await asyncio.sleep(rng.uniform(0.5 * think_s, 1.5 * think_s))
        body = {
            "model": "firesift-extractive",
            "stream": True,
            "messages": [{"role": "user", "content": QUESTIONS[n % len(QUESTIONS)]}],
        }
        n += 1
        t0 = time.perf_counter()
        first = None
        try:
            async with c.stream("POST", "/v1/chat/completions", json=body) as r:
                if r.status_code != 200:
                    stats["errors"] += 1
                    await r.aread()
                    continue
                async for line in r.aiter_lines():
                    if (
                        first is None
                        and line.startswith("data: ")
                        and '"content":"' in line
                        and '"content":""' not in line
                    ):
                        first = time.perf_counter() - t0
                    if line == "data: [DONE]":
                        break
                    if line.startswith('data: {"error"'):
                        stats["errors"] += 1
        except httpx.HTTPError:
            stats["errors"] += 1
            continue
        stats["answers"] += 1
        if first is not None:
            ttft.append(first)


async def _ingest(
    c: httpx.AsyncClient, batches: list[bytes], interval: float, stats: dict[str, int]
) -> None:
    """Send each batch on schedule (open loop, up to 16 in flight), so a slow answer delays
    only its own batch."""
    inflight = asyncio.Semaphore(16)

    async def send(batch: bytes) -> None:
        try:
            r = await c.post("/api/ingest", content=batch)
        except httpx.HTTPError:
            stats["ingest_errors"] += 1
        else:
            if r.status_code != 200:
                stats["ingest_errors"] += 1
            else:
                stats["ingested"] += int(r.json()["ingested"])
        finally:
            inflight.release()

    start = time.perf_counter()
    tasks = []
    for k, batch in enumerate(batches):
        delay = start + k * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await inflight.acquire()
        tasks.append(asyncio.create_task(send(batch)))
    await asyncio.gather(*tasks)
    stats["ingest_seconds_x1000"] = int((time.perf_counter() - start) * 1000)


async def _live(c: httpx.AsyncClient, stop: asyncio.Event, stats: dict[str, int]) -> None:
    async with c.stream("GET", "/api/live") as r:
        async for line in r.aiter_lines():
            if line == "event: post":
                stats["live_posts"] += 1
            elif line == "event: lag":
                stats["live_lag_notes"] += 1
            if stop.is_set():
                return


async def _run(
    url: str,
    clients: int,
    think_s: float,
    batches: list[bytes],
    interval: float,
    duration: float,
) -> Any:
    stats = {
        "errors": 0,
        "answers": 0,
        "ingest_errors": 0,
        "ingested": 0,
        "live_posts": 0,
        "live_lag_notes": 0,
    }
    ttft: list[float] = []
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    timeout = httpx.Timeout(60.0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as c:
        stop = asyncio.Event()
        live = asyncio.create_task(_live(c, stop, stats))
        await asyncio.sleep(0.5)
        until = time.perf_counter() + duration
        t0 = time.perf_counter()
        await asyncio.gather(
            _ingest(c, batches, interval, stats),
            *(_chat_client(c, i, until, think_s, ttft, stats) for i in range(clients)),
        )
        elapsed = time.perf_counter() - t0
        deadline = time.perf_counter() + 10
        while stats["live_posts"] < stats["ingested"] and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
        stop.set()
        live.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await live
        metrics = (await c.get("/metrics")).text
    return stats, ttft, elapsed, metrics


def _metric(text: str, name: str) -> float | None:
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def bench_serve(
    work: Path,
    posts: int | None,
    log: Log,
    *,
    clients: int = 50,
    rate: int = 5_000,
    duration_s: float = 20.0,
    think_s: float = 2.0,
) -> dict[str, Any]:
    """Run the load described in the module docstring; ``posts`` overrides the number of
    posts ingested (default: ``rate * duration_s``)."""
    from firesift.synthetic import SyntheticStream

    db = work / "db"
    log("ingesting the demo corpus")
    newest = _prepare(db)
    total = posts or int(rate * duration_s)
    interval = 0.05
    per_batch = max(1, int(rate * interval))
    start = newest + timedelta(minutes=1)
    stream = SyntheticStream(seed=5, start=start, rate_per_s=rate)
    lines = list(stream.lines(total))
    batches = [b"".join(lines[i : i + per_batch]) for i in range(0, total, per_batch)]
    proc, url = _start_server(db, work / "server.log")
    try:
        log(f"serving on {url}: {clients} streaming chat clients, {rate} posts/s ingest")
        stats, ttft, elapsed, metrics = asyncio.run(
            _run(url, clients, think_s, batches, interval, duration_s)
        )
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    ingest_s = stats.pop("ingest_seconds_x1000") / 1000
    ms = [t * 1000 for t in ttft]
    return {
        "clients": clients,
        "think_s": think_s,
        "duration_s": round(elapsed, 1),
        "answers": stats["answers"],
        "answers_per_s": round(stats["answers"] / elapsed, 1),
        "errors": stats["errors"] + stats["ingest_errors"],
        "ttft_p50_ms": round(_pct(ms, 0.5), 1),
        "ttft_p95_ms": round(_pct(ms, 0.95), 1),
        "ttft_p99_ms": round(_pct(ms, 0.99), 1),
        "ttft_max_ms": round(max(ms), 1) if ms else None,
        "target_ingest_posts_per_s": rate,
        "achieved_ingest_posts_per_s": round(stats["ingested"] / ingest_s) if ingest_s else 0,
        "posts_ingested": stats["ingested"],
        "live_posts_received": stats["live_posts"],
        "live_lag_notes": stats["live_lag_notes"],
        "index_lag_at_end": _metric(metrics, "firesift_index_lag_changes"),
        "server_ttft_count": _metric(metrics, "firesift_chat_time_to_first_token_seconds_count"),
    }


if __name__ == "__main__":
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="firesift-bench-serve-") as tmp:
        result = bench_serve(Path(tmp), None, lambda m: print(m, file=sys.stderr))
    print(json.dumps(result, indent=2))
