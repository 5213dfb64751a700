"""The README's 60-second tour, run as written through the ``firesift`` entry point.

The commands are parsed out of README.md, so the README cannot drift from what works. They run
in the repository root (the tour's paths are relative to it) against the data that ships with
the project, with a throwaway home directory so the default data directory is fresh. Commands
that keep running (``serve``, ``demo``) are started, asked for the page and some posts, and
stopped; ``chat`` is given a question on stdin.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRESIFT = Path(sys.executable).with_name("firesift")
LONG_RUNNING = {"serve", "demo"}
# What each command's output must show beyond being non-empty and error-free.
SHOWS = {
    "ingest": re.compile(r"ingested [1-9][\d,]*.*skipped 0\b"),
    "search": re.compile(r"^\s*1\. @\w+", re.M),
    "trends": re.compile(r"Stories as of .*\n(?:.*\n)*.*\b(emerging|peaking|fading)\b"),
    "ask": re.compile(r"\[1\](?:.|\n)*Sources\n\[1\] @\w+"),
    "check": re.compile(r"^(SUPPORTED|DISPUTED|UNVERIFIED|NO EVIDENCE)\s", re.M),
    "chat": re.compile(r"\[1\](?:.|\n)*Sources\n\[1\] @\w+"),
    "thread": re.compile(r"\[(?:support|deny|query|comment) \d\.\d\d\] @\w+"),
}
ERRORS = re.compile(r"Traceback|^firesift: (?!serving on|interrupted)|\berror:", re.M)


def tour_commands() -> list[list[str]]:
    """The ``firesift ...`` lines of the tour's first code block, comments stripped."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A 60-second tour", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the README tour has no ```sh block"
    commands = []
    for line in block.group(1).splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "firesift":
            commands.append(words)
    return commands


COMMANDS = tour_commands()


def test_the_tour_covers_the_commands_a_new_user_meets() -> None:
    names = [c[1] for c in COMMANDS]
    assert names[0] == "ingest", "the tour starts by ingesting the shipped data"
    for path in COMMANDS[0][2:]:
        assert (ROOT / path).is_file(), f"the tour ingests {path}, which does not ship"
    assert {"search", "trends", "ask", "check", "thread", "chat", "serve", "demo"} <= set(names)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A new user's environment: an empty home (so the default data directory is new), any
    free port for the servers, no terminal."""
    home = tmp_path_factory.mktemp("tour-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIRESIFT_", "XDG_"))}
    env.update(HOME=str(home), FIRESIFT_PORT="0", COLUMNS="100")
    env["PATH"] = f"{FIRESIFT.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def ingested(env: dict[str, str]) -> str:
    """Run the tour's first command (the ingest every later one reads)."""
    return _run(COMMANDS[0], env)


def _run(words: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    assert FIRESIFT.is_file(), f"the entry point is not installed: {FIRESIFT}"
    done = subprocess.run(
        [str(FIRESIFT), *words[1:]],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{shlex.join(words)} exited {done.returncode}:\n{output}"
    assert done.stdout.strip() or done.stderr.strip(), f"{shlex.join(words)} printed nothing"
    assert not ERRORS.search(output), f"{shlex.join(words)} reported an error:\n{output}"
    return output


@pytest.mark.parametrize("words", [c for c in COMMANDS if c[1] not in LONG_RUNNING], ids=shlex.join)
def test_tour_command_prints_results(words: list[str], env: dict[str, str], ingested: str) -> None:
    if words == COMMANDS[0]:
        output = ingested
    elif words[1] == "chat":
        output = _run(words, env, stdin="Has the Ottawa gunman been identified?\n")
    else:
        output = _run(words, env)
    assert SHOWS[words[1]].search(output), f"{shlex.join(words)} shows nothing useful:\n{output}"


@pytest.mark.parametrize("words", [c for c in COMMANDS if c[1] in LONG_RUNNING], ids=shlex.join)
def test_tour_server_serves_the_page_and_posts(
    words: list[str], env: dict[str, str], ingested: str
) -> None:
    with _Server(words, env) as (url, log), httpx.Client(base_url=url, timeout=30) as client:
        assert "<html" in client.get("/").text.lower()
        deadline = time.monotonic() + 30
        posts = 0
        while time.monotonic() < deadline and not posts:
            posts = client.get("/api/stats").json()["posts"]
            time.sleep(0.2)
        assert posts, "the server has posts to show"
        question = {"role": "user", "content": "What is happening right now?"}
        body = {"model": "firesift-extractive", "messages": [question]}
        answer = client.post("/v1/chat/completions", json=body)
        assert answer.status_code == 200 and answer.json()["citations"], answer.text
    assert not ERRORS.search("".join(log)), "".join(log)


class _Server:
    """A tour command that keeps running: started, its announced URL read, stopped with
    Ctrl-C as a user would."""

    def __init__(self, words: list[str], env: dict[str, str]) -> None:
        self.words, self.env = words, env
        self.log: list[str] = []

    def __enter__(self) -> tuple[str, list[str]]:
        self.proc = subprocess.Popen(
            [str(FIRESIFT), *self.words[1:]],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        url = ""
        deadline = time.monotonic() + 90
        for line in self._lines():
            self.log.append(line)
            if "serving on" in line:
                url = line.rsplit(" ", 1)[-1].strip()
                break
            assert time.monotonic() < deadline, "".join(self.log)
        assert url, f"{shlex.join(self.words)} never served:\n{''.join(self.log)}"
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        return url, self.log

    def _lines(self) -> Iterator[str]:
        assert self.proc.stderr is not None
        yield from iter(self.proc.stderr.readline, "")

    def _drain(self) -> None:
        self.log.extend(self._lines())

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{shlex.join(self.words)} ignored Ctrl-C") from None
        self.reader.join(timeout=5)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        if exc[0] is None:
            assert code in (0, 130), f"exit {code}:\n{''.join(self.log)}"
