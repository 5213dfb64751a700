"""Where the real recorded data that ships with the source tree lives: ``data/`` at its root.

The evaluations, ``firesift train-stance`` and the tests read it. An installed wheel does not
carry it, so the commands that need it check for it and ask for ``--data`` when it is missing.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data"
