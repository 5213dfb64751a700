"""firesift: a self-hosted answer engine for the live social stream."""

from __future__ import annotations

__version__ = "0.1.0"
