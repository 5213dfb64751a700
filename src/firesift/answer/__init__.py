"""The answer engine: grounded, cited answers and the claim checks behind them."""

from __future__ import annotations
