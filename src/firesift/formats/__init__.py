"""Wire formats: one parser per payload shape, a registry, and a robust reader.

Built-in formats register exactly as a plugin would, through :func:`register`, in sniff order:
the most specific shapes first and the permissive canonical JSONL last. A plugin adds its own
with ``register(MyFormat())``; ``FORMATS`` (and so the CLI's ``--format`` choices and the
``get()`` error message) picks it up.

::

    from firesift.formats import Problem, read

    for item in read("stream.jsonl"):
        if isinstance(item, Problem):
            print(item)
        else:
            store(item.events)
"""

from __future__ import annotations

from firesift.formats.base import FORMATS, Format, detect, get, names, register, unregister
from firesift.formats.canonical import Canonical
from firesift.formats.jetstream import Jetstream
from firesift.formats.mastodon import Mastodon
from firesift.formats.reader import Messages, Parsed, Problem, read
from firesift.formats.twitter_v1 import TwitterV1
from firesift.formats.x_v2 import XV2

__all__ = [
    "FORMATS",
    "XV2",
    "Canonical",
    "Format",
    "Jetstream",
    "Mastodon",
    "Messages",
    "Parsed",
    "Problem",
    "TwitterV1",
    "detect",
    "get",
    "names",
    "read",
    "register",
    "unregister",
]

for _builtin in (Jetstream(), Mastodon(), TwitterV1(), XV2(), Canonical()):
    register(_builtin)
del _builtin
