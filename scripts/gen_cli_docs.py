#!/usr/bin/env python3
"""Write docs/cli.md from the CLI's own --help (tests/test_docs.py checks it is current).

.venv/bin/python scripts/gen_cli_docs.py
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "cli.md"


def render() -> str:
    from firesift.cli import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        return _render(build_parser())
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def _render(parser: argparse.ArgumentParser) -> str:
    parts = [
        "# firesift command reference",
        "",
        "Generated from `firesift --help` by `scripts/gen_cli_docs.py`; do not edit by hand.",
        "",
        "```",
        parser.format_help().rstrip(),
        "```",
    ]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        parts += ["", f"## firesift {name}", "", "```", p.format_help().rstrip(), "```"]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}")
