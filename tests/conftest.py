"""Shared test fixtures: the real recorded data in ../shared/data and throwaway data dirs."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
FIXTURES = SHARED_DATA / "fixtures"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: real recorded payloads (see its README)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fixtures_dir(shared_data: Path) -> Path:
    return shared_data / "fixtures"


@pytest.fixture(scope="session")
def news_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding the real RumourEval 2017 and PHEME posts (built once; tests
    open it read-only)."""
    from firesift.database import Database
    from firesift.formats import Problem, read
    from firesift.pipeline import IngestSummary

    path = tmp_path_factory.mktemp("news-db")
    with Database(path) as db:
        pipeline = db.pipeline()
        summary = IngestSummary()
        for name in ("rumoureval2017/posts.jsonl", "pheme9/source_tweets.jsonl"):
            for item in read(shared_data / name):
                assert not isinstance(item, Problem), item
                pipeline.feed(item.events, summary)
        pipeline.flush(summary)
    return path


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests never touch the real home directory or a developer's FIRESIFT_* settings."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name in [k for k in __import__("os").environ if k.startswith("FIRESIFT_")]:
        monkeypatch.delenv(name)
