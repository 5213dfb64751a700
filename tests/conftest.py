"""Shared test fixtures: the real recorded data in ``data/`` and throwaway data dirs."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest
from hypothesis import settings

from firesift.recorded import DATA

ROOT = Path(__file__).resolve().parents[1]

# Property-based tests run the same examples on every machine and every run (no example
# database), so a CI failure reproduces locally; tests set their own max_examples.
settings.register_profile("firesift", derandomize=True, database=None, deadline=None)
settings.load_profile("firesift")


@pytest.fixture(scope="session")
def real_data() -> Path:
    """``data/``: the real recorded payloads that ship with the repository (see its README)."""
    assert DATA.is_dir(), f"the repository's data folder is missing: {DATA}"
    return DATA


@pytest.fixture(scope="session")
def fixtures_dir(real_data: Path) -> Path:
    return real_data / "fixtures"


@pytest.fixture(scope="session")
def news_dir(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
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
            for item in read(real_data / name):
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Browser tests skipped for want of Chromium report from one place, so the summary shows
    one line saying how to get them instead of one line per test."""
    report = yield
    if report.skipped and item.get_closest_marker("browser") and isinstance(report.longrepr, tuple):
        report.longrepr = (item.location[0], None, report.longrepr[2])  # type: ignore[assignment]
    return report
