"""Docs that cannot drift: the CLI reference and the settings table in the README."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from firesift.config import SETTINGS

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen_cli_docs.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == gen.render(), "run: .venv/bin/python scripts/gen_cli_docs.py"


def test_readme_documents_every_setting_and_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make run" in readme and "make test" in readme
    for s in SETTINGS:
        assert f"`{s.env}`" in readme, f"README does not document {s.env}"
