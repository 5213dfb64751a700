"""``firesift demo`` as ``make run`` starts it: a real process on a free port, offline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx


def test_demo_shows_posts_trends_and_answers_within_seconds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "FIRESIFT_DB": str(tmp_path / "unused")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "firesift.cli", "demo", "--port", "0", "--db", str(tmp_path / "db")],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        url = ""
        started = time.monotonic()
        while not url:
            line = proc.stderr.readline()
            assert line, "demo exited before serving"
            if "serving on" in line:
                url = line.rsplit(" ", 1)[-1].strip()
        with httpx.Client(base_url=url, timeout=30) as client:
            assert "<html" in client.get("/").text.lower()
            deadline = started + 10
            first = 0
            while time.monotonic() < deadline and first <= 1000:
                first = client.get("/api/stats").json()["posts"]
                time.sleep(0.1)
            assert first > 1000, "the backfill is ingested at once"
            stories: list[object] = []
            while time.monotonic() < deadline and not stories:
                stories = client.get("/api/trends").json()["stories"]
                time.sleep(0.2)
            assert stories, "trends formed within 10 s of start"
            time.sleep(1.5)
            assert client.get("/api/stats").json()["posts"] > first, "posts keep arriving"
            body = {
                "model": "firesift-extractive",
                "messages": [{"role": "user", "content": "What is happening in Ottawa?"}],
            }
            answer = client.post("/v1/chat/completions", json=body).json()
            assert answer["citations"], answer
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
