"""``file:PATH``: read a JSONL file of any format the reader detects, and optionally follow it.

With ``follow=true`` the source keeps reading as the file grows (``tail -F``): when the path is
replaced (log rotation: a new inode) or truncated, the rest of the old file is read and the new
one is read from its start. The cursor is ``<inode>:<byte offset>`` of the last complete line
stored, so a restart resumes after it in the same file and starts over in a rotated one (the
store's dedupe absorbs what was already stored). A partial last line waits for its newline
while following, and is parsed at the end otherwise.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, ClassVar

from firesift.formats.reader import MAX_LINE_BYTES, Messages
from firesift.post import Post
from firesift.sources.base import Batch, Fatal, Source

__all__ = ["FileSource"]

_CHUNK = 1 << 20


class FileSource(Source):
    name = "file"
    help = "Read (and with follow=true, tail) a JSONL file in any supported format."
    arg = "path of the file"
    arg_required = True
    options: ClassVar[dict[str, str]] = {
        "follow": "keep reading as the file grows, across rotation (true/false, default false)",
        "format": "payload format (default: detect per line)",
        "poll": "seconds between checks for new data while following (default 0.2)",
    }
    has_cursor = True
    stall_s = 0.0  # a quiet file is not a stalled connection

    @property
    def path(self) -> Path:
        return Path(self.spec.arg).expanduser()

    async def stream(self, cursor: str | None) -> AsyncIterator[Batch]:
        follow, poll = self.bool_option("follow", False), self.float_option("poll", 0.2)
        messages = Messages(self.option("format", "auto"))
        while True:
            try:
                fh = self.path.open("rb")
            except FileNotFoundError:
                if not follow:
                    raise Fatal(f"no such file: {self.path}") from None
                await asyncio.sleep(poll)
                continue
            except OSError as e:
                raise Fatal(f"cannot read {self.path}: {e.strerror}") from None
            with fh:
                inode = os.fstat(fh.fileno()).st_ino
                offset = _resume(cursor, inode, os.fstat(fh.fileno()).st_size)
                fh.seek(offset)
                async for batch in self._tail(fh, inode, offset, messages, follow, poll):
                    yield batch
            if not follow:
                return
            cursor = None  # rotated or truncated: the new file from its start

    async def _tail(
        self,
        fh: BinaryIO,
        inode: int,
        offset: int,
        messages: Messages,
        follow: bool,
        poll: float,
    ) -> AsyncIterator[Batch]:
        label = str(self.path)
        lineno = 0  # line numbers count from where reading started
        carry = b""
        while True:
            chunk = await asyncio.to_thread(fh.read, _CHUNK)
            if chunk:
                data = carry + chunk
                lines = data.split(b"\n")
                carry = lines.pop()
                if len(carry) > MAX_LINE_BYTES:
                    lineno += 1
                    yield Batch(problems=[(f"{label}:+{lineno}", "line is too long")])
                    offset += len(carry)
                    carry = b""
                results = []
                for line in lines:
                    lineno += 1
                    offset += len(line) + 1
                    results.extend(messages.parse(line, f"{label}:+{lineno}"))
                batch = Batch.of(results, cursor=f"{inode}:{offset}")
                yield Batch(batch.events, batch.cursor, _newest(batch), problems=batch.problems)
                continue
            if not follow:
                if carry:
                    lineno += 1
                    offset += len(carry)
                    batch = Batch.of(
                        messages.parse(carry, f"{label}:+{lineno}"), cursor=f"{inode}:{offset}"
                    )
                    yield batch
                return
            if _replaced(self.path, inode, fh.tell()):
                return
            yield Batch()  # alive, nothing new
            await asyncio.sleep(poll)


def _resume(cursor: str | None, inode: int, size: int) -> int:
    if not cursor:
        return 0
    seen_inode, _, seen_offset = cursor.partition(":")
    if seen_inode != str(inode) or not seen_offset.isdigit() or int(seen_offset) > size:
        return 0
    return int(seen_offset)


def _replaced(path: Path, inode: int, position: int) -> bool:
    """The path now names another file (rotated) or this one shrank (truncated)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False  # mid-rotation: keep the old file until the new one appears
    return st.st_ino != inode or st.st_size < position


def _newest(batch: Batch) -> datetime | None:
    times = [e.created_at for e in batch.events if isinstance(e, Post)]
    return max(times) if times else None
