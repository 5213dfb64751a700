"""Watches: standing questions firesift keeps evaluating as posts arrive, and alerts on.

- :mod:`~firesift.watches.model`: what a watch and an event are (kinds ``matches``, ``story``,
  ``verdict``) and their validation;
- :mod:`~firesift.watches.store`: their tables in the store's SQLite file (own ordered
  migrations), events and owed webhook deliveries, written atomically with the evaluator's
  position in the change log;
- :mod:`~firesift.watches.evaluate`: the pipeline sink that evaluates them incrementally (an
  anchor index keeps the cost per post independent of how many watches cannot match it), and
  the story and verdict checks it schedules;
- :mod:`~firesift.watches.deliver`: signed webhooks with back-off (at-least-once, resumed after
  a restart) and the resumable SSE stream;
- :mod:`~firesift.watches.service`: the parts wired into a running service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from firesift import _lazy

if TYPE_CHECKING:
    from firesift.watches.deliver import SIGNATURE_HEADER, Deliverer, sign, verify
    from firesift.watches.evaluate import Evaluator, anchors
    from firesift.watches.model import KINDS, Watch, WatchEvent, new_watch
    from firesift.watches.store import WatchStore

__getattr__ = _lazy.exports(
    __name__,
    {
        **dict.fromkeys(("SIGNATURE_HEADER", "Deliverer", "sign", "verify"), "deliver"),
        **dict.fromkeys(("Evaluator", "anchors"), "evaluate"),
        **dict.fromkeys(("KINDS", "Watch", "WatchEvent", "new_watch"), "model"),
        "WatchStore": "store",
    },
)

__all__ = [
    "KINDS",
    "SIGNATURE_HEADER",
    "Deliverer",
    "Evaluator",
    "Watch",
    "WatchEvent",
    "WatchStore",
    "anchors",
    "new_watch",
    "sign",
    "verify",
]
