"""``nats``: posts from a NATS JetStream stream, through a durable pull consumer.

Protocol, as read from nats-py 2.16 (``nats/js/client.py``: ``pull_subscribe_bind``,
``PullSubscription.fetch``; ``nats/aio/client.py``: ``connect``, ``_select_next_server``;
``nats/aio/msg.py``: ``ack``, ``nak``, ``term``) and the JetStream consumer docs
(https://docs.nats.io/nats-concepts/jetstream/consumers):

- A **durable pull consumer** is server-side state: the stream position, and the messages
  delivered but not yet acknowledged. Every client that pulls from the same durable shares its
  messages (each goes to one of them), so several firesift processes with one ``durable`` split
  the stream: the first step of scaling out. A restarted process resumes where the consumer is,
  whatever the local store holds. The source creates the durable when it is missing (explicit
  acks, ``deliver=all|new``, ``ack_wait``, ``max_ack_pending``); an existing one is bound as
  it is, after checking it is a pull consumer with explicit acks on the requested subject.
- **Fetch.** ``fetch(batch, timeout=wait)`` publishes a pull request to
  ``$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>`` (first ``no_wait``, then one that lingers
  until ``expires``) and returns up to ``batch`` messages, or raises a timeout when none came
  (it may also return an empty list when the server's 408 and the client's timer race).
- **Acks.** Explicit, one per message (``+ACK`` published to the message's reply subject,
  fire-and-forget), sent only once the store committed the batch. ``AckAll`` would be one ack
  per batch, but it acknowledges everything delivered to the durable up to that sequence,
  including what another process sharing the durable has not stored yet, so it is not used.
  What will not be stored is handed back with ``-NAK`` (redelivered at once): a batch the
  store refused, batches still queued when the connection ends, and the messages of a fetch
  the runner stopped reading in the middle of (the source lets that fetch finish, at most
  ``wait`` seconds, rather than lose what it brings). The naks are sent only once no pull
  request of ours is waiting (the fetch finished, the pull subscription unsubscribed), else
  the redelivery would go straight back into a request nobody reads and sit out
  ``ack_wait``; from the next connection when the old one is dead. A message the server
  delivered but never saw acknowledged (the process died, the ack was lost with the
  connection) is redelivered after ``ack_wait``; the store's dedupe absorbs it when it had
  been stored. ``in_progress`` (``+WPI``) is not sent: a batch waits at most for the runner's
  bounded queue, and ``max_ack_pending`` (the server's default, 1,000, unless set: a larger
  one measured no faster) bounds how many messages are outstanding at all, a fraction of a
  second of the store's rate, far under ``ack_wait``; a batch held longer is
  redelivered, which costs work, never a post.
- **Payloads.** A message carries one wire message in any format the reader detects (a
  Jetstream v1 event, an X v2 stream line, a Mastodon Status, a canonical post; pretty-printed
  JSON too), or a JSONL batch: a payload that is not one JSON document but has several lines
  is read line by line. Results are labelled ``<stream>:<stream seq>`` (``:+<line>`` for a
  batch's lines). A message that yields nothing but problems (garbage) is reported and
  terminated (``+TERM``: never redelivered; the server emits a ``MSG_TERMINATED`` advisory)
  once the batch around it is stored; a batch with some good lines is acknowledged.
- **Cursor.** The consumer keeps the position, so ``cursor`` is not needed to resume; each
  batch's cursor is its last stream sequence, for status. ``source_time`` is the newest
  message's stream timestamp (``msg.metadata.timestamp``), so the lag shown is how far the
  consumer is behind the stream.
- **Connection.** nats-py's own reconnect is off (``allow_reconnect=False``): while it
  reconnects a fetch merely times out, which would look like an idle stream and hide the
  outage from status. A lost connection closes the client, the fetch raises, and the runner
  reconnects with its back-off and shows it. The connect itself tries every listed server
  (``nats://a:4222,nats://b:4222``; ``max_reconnect_attempts=1`` is nats-py's per-server
  attempt count in that loop). An empty fetch is followed by a PING/PONG (``flush``): the
  server answered, so a keep-alive is yielded and an idle stream never counts as stalled; a
  server that does not answer raises.
- **Errors.** A refused authorization (``-ERR 'Authorization Violation'``), a missing stream
  with ``create=false``, or a durable of the wrong kind stop the source (:class:`Fatal`).
  Anything else (refused connection, ``503`` while JetStream restarts, the consumer deleted
  under us) raises, and the runner reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.js import api

from firesift.errors import ConfigError, NotFound
from firesift.formats.reader import Messages, Parsed, Problem
from firesift.sources.base import Batch, Fatal, Source, SourceSpec

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext

    from firesift.config import Settings

__all__ = ["NatsSource"]

log = logging.getLogger("firesift.sources")

_DEFAULT_SERVER = "nats://127.0.0.1:4222"
_NAME = re.compile(r"^[^.*>\s]+$")
"""Stream and consumer names: no ``.``, ``*``, ``>`` or whitespace (they become subject tokens)."""
_DELIVER = {"all": api.DeliverPolicy.ALL, "new": api.DeliverPolicy.NEW}


class NatsSource(Source):
    name = "nats"
    help = "A NATS JetStream stream through a durable pull consumer, acknowledged after the store."
    arg = "server URL(s), comma-separated (default nats://127.0.0.1:4222)"
    options: ClassVar[dict[str, str]] = {
        "stream": "JetStream stream name (default: the stream that holds subject)",
        "subject": "filter subject, e.g. posts.> (default: the whole stream)",
        "durable": "durable consumer name; processes sharing it split the messages (firesift)",
        "format": "payload format (default: detect per message)",
        "batch": "messages per fetch (default 500)",
        "wait": "seconds a fetch waits for messages before the stream counts as idle (5)",
        "create": "create the stream on subject if it is missing (true/false, default false)",
        "deliver": "where a new durable starts: all or new (default all)",
        "ack_wait": "seconds before an unacknowledged message is redelivered, new durable (30)",
        "max_ack_pending": "unacknowledged messages at most, new durable (default 1000)",
        "creds": "path of a .creds file (JWT and NKey seed; needs the nkeys package)",
        "token": "authentication token",
        "user": "user name",
        "password": "password (with user)",
    }
    has_cursor = True

    def __init__(self, spec: SourceSpec, settings: Settings) -> None:
        super().__init__(spec, settings)
        key = spec.key
        self.servers = [s.strip() for s in (spec.arg or _DEFAULT_SERVER).split(",") if s.strip()]
        self.stream_name = self.option("stream")
        self.subject = self.option("subject")
        self.durable = self.option("durable", "firesift")
        for what, value in (("stream", self.stream_name), ("durable", self.durable)):
            if value and not _NAME.match(value):
                raise ConfigError(f"source {key}: {what}={value!r} may not contain . * > or spaces")
        if not self.durable:
            raise ConfigError(f"source {key}: durable= needs a consumer name")
        if not (self.stream_name or self.subject):
            raise ConfigError(f"source {key}: give stream=NAME, subject=SUBJECT or both")
        self.create = self.bool_option("create", False)
        if self.create and not (self.stream_name and self.subject):
            raise ConfigError(f"source {key}: create=true needs both stream= and subject=")
        deliver = self.option("deliver", "all").lower()
        if deliver not in _DELIVER:
            raise ConfigError(f"source {key}: deliver={deliver!r}; known: all, new")
        self.deliver = _DELIVER[deliver]
        self.batch = int(self.float_option("batch", 500))
        self.wait = self.float_option("wait", 5.0)
        if self.batch < 1 or self.wait <= 0:
            raise ConfigError(f"source {key}: batch must be >= 1 and wait > 0")
        self.ack_wait = self.float_option("ack_wait", 30.0)
        pending = self.float_option("max_ack_pending", 0)
        self.max_ack_pending = int(pending) if pending else None
        self.format = self.option("format", "auto")
        try:
            Messages(self.format)  # an unknown format fails here, not on the first message
        except NotFound as e:
            raise ConfigError(f"source {key}: {e}") from None
        self.auth: dict[str, Any] = {
            k: self.option(k) for k in ("token", "user", "password") if self.option(k)
        }
        if self.option("creds"):
            creds = Path(self.option("creds")).expanduser()
            if not creds.is_file():
                raise ConfigError(f"source {key}: no such creds file: {creds}")
            self.auth["user_credentials"] = str(creds)
        self._nc: Client | None = None
        self._refused: list[Msg] = []

    async def stream(self, cursor: str | None) -> AsyncIterator[Batch]:
        await self._close()  # the runner drained the previous connection's acks already
        try:
            self._nc = nc = await self._connect()
            js = nc.jetstream()
            sub = await self._consumer(js, await self._stream(js))
            await self._renak(nc)  # what the previous connection could not hand back
        except TimeoutError:  # a JetStream API request without an answer
            raise ConnectionError(f"JetStream on {self._where()} did not answer") from None
        messages = Messages(self.format)
        fetching: asyncio.Future[list[Msg]] | None = None
        try:
            while True:
                fetching = asyncio.ensure_future(sub.fetch(self.batch, timeout=self.wait))
                try:
                    msgs = await asyncio.shield(fetching)
                except nats.errors.ConnectionClosedError:
                    raise ConnectionError(self._lost(nc)) from None
                except TimeoutError:  # nats-py raises its own and asyncio's
                    if nc.is_closed:
                        raise ConnectionError(self._lost(nc)) from None
                    msgs = []
                fetching = None
                if msgs:
                    yield self._batch(msgs, messages)
                    continue
                try:
                    await nc.flush(timeout=max(1, round(self.wait)))
                except nats.errors.ConnectionClosedError:
                    raise ConnectionError(self._lost(nc)) from None
                except TimeoutError:
                    raise ConnectionError(f"{self._where()} did not answer a ping") from None
                yield Batch()  # the server answered: idle, not stalled
        finally:
            if fetching is not None:
                # the runner stopped reading mid-fetch: what that fetch still brings (at most
                # `wait` seconds away) is handed back instead of waiting out ack_wait
                with contextlib.suppress(BaseException):
                    self._refused.extend(await fetching)
            # no pull request may linger on this inbox and take messages nobody reads
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def aclose(self) -> None:
        await self._close()

    # -- connection, stream, consumer --------------------------------------------------------

    async def _connect(self) -> Client:
        reasons: list[str] = []

        async def on_error(e: Exception) -> None:
            reasons.append(f"{type(e).__name__}: {e}")

        nc = Client()
        try:
            await nc.connect(
                self.servers,
                name="firesift",
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                error_cb=on_error,
                **self.auth,
            )
        except BaseException as e:
            with contextlib.suppress(Exception):
                await nc.close()  # a refused login leaves the socket open otherwise
            raise self._connect_error(e, reasons) from None
        return nc

    def _connect_error(self, e: BaseException, reasons: list[str]) -> BaseException:
        servers = ", ".join(self.servers)
        if isinstance(e, nats.errors.NoServersError):
            why = reasons[-1] if reasons else "no server answered"
            return ConnectionError(f"cannot connect to {servers}: {why}")
        if isinstance(e, TimeoutError):  # the handshake (INFO, CONNECT, PING) went unanswered
            return ConnectionError(f"{servers} did not complete the NATS handshake")
        if isinstance(e, ModuleNotFoundError):  # nats-py loads nkeys only for creds=
            return Fatal(f"source {self.spec.key}: creds= needs the {e.name} package")
        if isinstance(e, nats.errors.AuthorizationError) or "Authorization Violation" in str(e):
            return Fatal(
                f"{servers} refused the credentials ({e}): check user/password, token or creds"
            )
        return e

    async def _stream(self, js: JetStreamContext) -> str:
        """The stream's name, created first when it is missing and ``create=true``."""
        if not self.stream_name:
            try:
                return await js.find_stream_name_by_subject(self.subject)
            except nats.js.errors.NotFoundError:
                raise Fatal(f"no JetStream stream holds subject {self.subject!r}") from None
        try:
            await js.stream_info(self.stream_name)
        except nats.js.errors.NotFoundError:
            if not self.create:
                raise Fatal(
                    f"JetStream stream {self.stream_name!r} does not exist on "
                    f"{self._where()} (create=true creates it on subject=)"
                ) from None
            await js.add_stream(name=self.stream_name, subjects=[self.subject])
            log.info(
                "source %s: created stream %s on %s", self.spec.key, self.stream_name, self.subject
            )
        return self.stream_name

    async def _consumer(
        self, js: JetStreamContext, stream: str
    ) -> JetStreamContext.PullSubscription:
        """Bind to the durable, creating it when it is missing; refuse one of the wrong kind."""
        try:
            info = await js.consumer_info(stream, self.durable)
        except nats.js.errors.NotFoundError:
            config = api.ConsumerConfig(
                name=self.durable,
                durable_name=self.durable,
                ack_policy=api.AckPolicy.EXPLICIT,
                deliver_policy=self.deliver,
                ack_wait=self.ack_wait,
                max_ack_pending=self.max_ack_pending,
                filter_subject=self.subject or None,
            )
            await js.add_consumer(stream, config=config)
        else:
            c = info.config
            problem = ""
            if c.deliver_subject:
                problem = "is a push consumer; a pull consumer is needed"
            elif c.ack_policy != api.AckPolicy.EXPLICIT:
                problem = f"acknowledges {c.ack_policy}; explicit acks are needed"
            elif self.subject and (c.filter_subject or "") != self.subject:
                problem = f"filters {c.filter_subject or 'nothing'!r}, not {self.subject!r}"
            if problem:
                raise Fatal(
                    f"consumer {self.durable!r} of stream {stream!r} {problem} "
                    "(pick another durable= or delete that consumer)"
                )
        return await js.pull_subscribe_bind(
            durable=self.durable, stream=stream, pending_msgs_limit=max(4 * self.batch, 4096)
        )

    async def _renak(self, nc: Client) -> None:
        """Hand back what was delivered but will not be stored (``-NAK`` to each reply
        subject, from any connection), once no pull request of ours is waiting to take it."""
        refused, self._refused = self._refused, []
        for msg in refused:
            if msg.reply:
                await nc.publish(msg.reply, b"-NAK")

    async def _close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is None or nc.is_closed:
            return
        with contextlib.suppress(Exception):
            await self._renak(nc)
            await nc.flush(timeout=2)  # the last acks and naks reach the server before the close
        with contextlib.suppress(Exception):
            await nc.close()

    def _where(self) -> str:
        url = self._nc.connected_url if self._nc is not None else None
        return f"{url.hostname}:{url.port}" if url is not None else ", ".join(self.servers)

    def _lost(self, nc: Client) -> str:
        why = nc.last_error
        return f"the connection to {self._where()} was lost" + (f": {why}" if why else "")

    # -- messages ------------------------------------------------------------------------------

    def _batch(self, msgs: list[Msg], messages: Messages) -> Batch:
        results: list[Parsed | Problem] = []
        poison: list[bool] = []
        for msg in msgs:
            where = f"{msg.metadata.stream}:{msg.metadata.sequence.stream}"
            got = _parse(messages, msg.data, where)
            results.extend(got)
            poison.append(bool(got) and not any(isinstance(r, Parsed) for r in got))

        async def ack() -> None:
            try:
                for msg, bad in zip(msgs, poison, strict=True):
                    await (msg.term() if bad else msg.ack())
            except (nats.errors.Error, OSError) as e:
                # the connection is gone: the server redelivers after ack_wait, the store's
                # dedupe absorbs what it already has
                log.warning("source %s: acks lost (%s); they will be redelivered", self.spec.key, e)

        def nack(e: BaseException) -> None:
            self._refused.extend(msgs)  # the connection ends next: nak-ed then

        return Batch.of(
            results,
            cursor=str(msgs[-1].metadata.sequence.stream),
            source_time=max(m.metadata.timestamp for m in msgs),
            ack=ack,
            nack=nack,
        )


def _parse(messages: Messages, data: bytes, where: str) -> list[Parsed | Problem]:
    """One message's results: one JSON document, else (several lines) a JSONL batch."""
    body = data.strip()
    if b"\n" not in body:
        return messages.parse(body, where)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        results: list[Parsed | Problem] = []
        for n, line in enumerate(body.split(b"\n"), 1):
            results.extend(messages.parse(line, f"{where}:+{n}"))
        return results
    return messages.value(value, where)
