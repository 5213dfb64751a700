"""Live sources: one connector per protocol behind one small interface, registered by name.

:mod:`~firesift.sources.base` defines the interface (:class:`Source`, :class:`Batch`), source
URIs and the registry (the ``firesift.sources`` entry point group, which the built-ins use as a
plugin would); :mod:`~firesift.sources.runner` runs any source with reconnects, back-off, stall
detection, back-pressure and acknowledgement after the store. One module per protocol:
``jetstream``, ``mastodon``, ``x``, ``rss``, ``file``, ``http``, ``nats``.
"""

from __future__ import annotations

from firesift.sources.base import (
    COMMON_OPTIONS,
    Batch,
    Fatal,
    Retry,
    Source,
    SourceSpec,
    build,
    build_all,
    cursor_key,
    get,
    names,
    register,
    unregister,
)

__all__ = [
    "COMMON_OPTIONS",
    "Batch",
    "Fatal",
    "Retry",
    "Source",
    "SourceSpec",
    "build",
    "build_all",
    "cursor_key",
    "get",
    "names",
    "register",
    "unregister",
]
