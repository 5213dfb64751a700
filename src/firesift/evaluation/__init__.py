"""Offline evaluations on the real recorded data in the repository's ``data/`` (``firesift eval``).

Each module exposes ``run(data_dir, ...) -> dict``: a JSON-ready summary the CLI prints, with
the method and parameters recorded next to the numbers so they can be reproduced.
"""

from __future__ import annotations
