"""``firesift bench watches`` through the CLI, small: every figure present and consistent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firesift.cli import main


def test_bench_watches_reports_each_watch_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "watches", "--posts", "2000", "--workdir", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["watches"]
    assert result["posts"] == 2000 and result["ingest_posts_per_s_without_watches"] > 0
    for count in (0, 100, 1000):
        assert result[f"w{count}_posts_per_s"] > 0
        assert 0.0 <= result[f"w{count}_sink_share_of_ingest"] < 1.0
        assert result[f"w{count}_sink_us_per_post"] >= 0.0
    assert result["w0_events"] == 0
    assert result["w1000_events"] >= result["w100_events"]
