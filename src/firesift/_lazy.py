"""Package namespaces whose names are imported on first use, so a CLI command pays only for the
modules it touches (``firesift search`` must not load numpy for the trend tracker, nor httpx for
webhooks, just because their packages re-export them)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

__all__ = ["exports"]


def exports(package: str, names: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package`` that imports ``names[attr]`` (a submodule of
    ``package``) the first time ``attr`` is asked for."""

    def __getattr__(attr: str) -> object:
        module = names.get(attr)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {attr!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), attr)

    return __getattr__
