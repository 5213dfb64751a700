"""Conversation threads with reply stances: the library on real RumourEval threads ingested into
a throwaway database, ``firesift thread``, ``GET /api/posts/...`` over a real socket, and
``firesift eval stance``."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from firesift.answer import thread as thread_mod
from firesift.answer.check import CueStance
from firesift.answer.stance import StanceModel
from firesift.answer.thread import shipped_stance, thread
from firesift.answer.train_stance import evaluate, load_examples
from firesift.cli import main
from firesift.database import Database
from firesift.errors import NotFound
from firesift.evaluation import stance_eval

if TYPE_CHECKING:
    from api_server import ServerProcess

pytest_plugins = ["api_server"]

THREAD = "524947674164760577"
"""An Ottawa shooting thread (train split): 20 replies, 7 levels deep, 8 gold denials."""
KEY = f"x:{THREAD}"


def _walk(tree: Mapping[str, Any], depth: int = 0) -> Iterator[tuple[str, int]]:
    for pid, children in tree.items():
        yield pid, depth
        if isinstance(children, Mapping):
            yield from _walk(children, depth + 1)


@pytest.fixture(scope="module")
def gold(real_data: Path) -> dict[str, int]:
    """The thread's reply tree from ``threads.jsonl``: post id -> depth (0 the source)."""
    for line in (real_data / "rumoureval2017" / "threads.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["thread_id"] == THREAD:
            return dict(_walk(row["structure"]))
    raise AssertionError(f"thread {THREAD} is not in threads.jsonl")


@pytest.fixture(scope="module")
def db_dir(ingested_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("thread") / "db"
    shutil.copytree(ingested_db, dst)
    return dst


@pytest.fixture(scope="module")
def db(db_dir: Path) -> Iterator[Database]:
    with Database(db_dir) as database:
        yield database


@pytest.fixture(scope="module")
def model() -> StanceModel:
    return StanceModel.load()


def test_every_reply_with_parent_depth_and_time_order(db: Database, gold: dict[str, int]) -> None:
    t = thread(db, KEY)
    assert t.root.id == THREAD and t.post.id == THREAD
    got = {p.post.id: p.depth for p in t.posts}
    assert got == gold, "every reply of the gold tree, each at its gold depth"
    times = [p.post.created_at for p in t.posts]
    assert times == sorted(times)
    keys = {p.post.key for p in t.posts}
    for p in t.replies:
        assert p.parent in keys
        parent = next(q for q in t.posts if q.post.key == p.parent)
        assert p.depth == parent.depth + 1
    assert max(got.values()) == 7


def test_stances_come_from_the_model_towards_the_source(db: Database, model: StanceModel) -> None:
    t = thread(db, KEY)
    assert t.stance_by == "model" and not t.warnings
    root = t.posts[0]
    assert root.stance is None and root.depth == 0
    for p in t.replies:
        expected = model.predict(p.post.text, t.root.text, depth=p.depth)
        assert p.stance == expected.label
        assert p.confidence == pytest.approx(expected.probs[expected.label])
        assert p.probs is not None and sum(p.probs.values()) == pytest.approx(1.0)
    assert "deny" in {p.stance for p in t.replies}


def test_tally_counts_replies_and_distinct_accounts(db: Database) -> None:
    t = thread(db, KEY)
    posts = Counter(p.stance for p in t.replies)
    accounts = {s: len({p.post.author.id for p in t.replies if p.stance == s}) for s in t.tally}
    assert {s: c["posts"] for s, c in t.tally.items() if c["posts"]} == dict(posts)
    assert {s: c["accounts"] for s, c in t.tally.items()} == accounts
    assert sum(c["posts"] for c in t.tally.values()) == len(t.replies) == 20
    # one account replied more than once with the same stance: accounts < posts somewhere
    assert any(c["accounts"] < c["posts"] for c in t.tally.values())


def test_as_of_hides_later_replies(db: Database) -> None:
    full = thread(db, KEY)
    cut = full.replies[9].post.created_at
    early = thread(db, KEY, as_of=cut)
    assert early.as_of == cut
    assert [p.post.key for p in early.posts] == [
        p.post.key for p in full.posts if p.post.created_at <= cut
    ]
    assert 0 < len(early.replies) < len(full.replies)
    assert sum(c["posts"] for c in early.tally.values()) == len(early.replies)
    with pytest.raises(NotFound, match="as of"):
        thread(db, KEY, as_of=full.root.created_at - timedelta(seconds=1))


def test_a_reply_opens_its_whole_conversation(db: Database) -> None:
    full = thread(db, KEY)
    deep = max(full.replies, key=lambda p: p.depth)
    t = thread(db, deep.post.key)
    assert t.post.key == deep.post.key and t.root.key == full.root.key
    assert [p.post.key for p in t.posts] == [p.post.key for p in full.posts]


def test_unknown_or_malformed_key_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound, match="no post x:1 "):
        thread(db, "x:1")
    with pytest.raises(NotFound, match="SOURCE:ID"):
        thread(db, THREAD)


def test_cue_fallback_is_named(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = thread(db, KEY, stance=CueStance())
    assert t.stance_by == "cues" and "cues" in t.warnings[0]
    # no model file: the shipped loader falls back by itself and says why
    missing = tmp_path / "absent.npz"
    monkeypatch.setattr(
        thread_mod.StanceModel, "load", classmethod(lambda cls, path=None: cls._read(missing))
    )
    shipped_stance.cache_clear()
    try:
        t = thread(db, KEY)
        assert t.stance_by == "cues"
        assert "absent.npz" in t.warnings[0]
    finally:
        shipped_stance.cache_clear()


def test_to_dict_shape(db: Database) -> None:
    d = thread(db, KEY).to_dict()
    assert set(d) >= {"key", "post", "root", "thread", "replies", "tally", "stance_by"}
    assert d["replies"] == len(d["thread"]) - 1 == 20
    first, *rest = d["thread"]
    assert first["depth"] == 0 and first["stance"] is None and first["parent"] is None
    for p in rest:
        assert p["stance"] in ("support", "deny", "query", "comment")
        assert 0 < p["confidence"] <= 1 and p["parent"].startswith("x:")
    assert json.loads(json.dumps(d)) == d


# --- CLI ----------------------------------------------------------------------------------


def test_cli_json_and_tree(db_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["thread", KEY, "--db", str(db_dir), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["key"] == KEY and body["replies"] == 20 and body["stance_by"] == "model"
    assert sum(c["posts"] for c in body["tally"].values()) == 20
    cut = body["thread"][5]["created_at"]
    assert main(["thread", KEY, "--db", str(db_dir), "--as-of", cut, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["replies"] == 5
    assert main(["thread", KEY, "--db", str(db_dir)]) == 0
    text = capsys.readouterr().out
    assert "[deny " in text and "Tally" in text and "20 replies" in text


def test_cli_unknown_post_is_exit_2_with_one_line(
    db_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["thread", "x:1", "--db", str(db_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [
        "firesift: no post x:1 (unknown, deleted or newer)"
    ]


# --- API over a real socket ---------------------------------------------------------------


def test_api_thread_over_a_socket(server: ServerProcess, db: Database) -> None:
    expected = thread(db, KEY).to_dict()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        r = client.get(f"/api/posts/x/{THREAD}")
        assert r.status_code == 200
        body = r.json()
        assert body["tally"] == expected["tally"] and body["stance_by"] == "model"
        assert [p["stance"] for p in body["thread"]] == [p["stance"] for p in expected["thread"]]
        cut = body["thread"][5]["created_at"]
        early = client.get(f"/api/posts/x/{THREAD}", params={"as_of": cut}).json()
        assert early["replies"] == 5 and early["as_of"].startswith(cut[:19])
        missing = client.get("/api/posts/x/1")
        assert missing.status_code == 404
        err = missing.json()["error"]
        assert err["code"] == "post_not_found" and err["type"] == "not_found_error"
        bad = client.get(f"/api/posts/x/{THREAD}", params={"as_of": "the day before"})
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "as_of"


# --- firesift eval stance -----------------------------------------------------------------


def test_eval_stance_scores_every_dev_reply(
    real_data: Path, model: StanceModel, capsys: pytest.CaptureFixture[str]
) -> None:
    data = real_data / "rumoureval2017"
    assert main(["eval", "stance", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["threads"] == 25 and result["replies"] == 256
    assert result["missing"] == 0 and result["n"] == 256
    assert result["depth_agreement"] == 1.0
    assert sum(map(sum, result["confusion"])) == result["n"]
    base = result["majority"]
    assert base["label"] == "comment"
    assert result["accuracy"] > base["accuracy"] and result["macro_f1"] > base["macro_f1"]
    assert result["macro_f1"] > result["cues"]["macro_f1"]
    # the thread path scores exactly what the trainer's own evaluation gives on dev replies
    replies = [e for e in load_examples(data)["dev"] if e.depth > 0]
    direct = evaluate(model, replies)
    assert direct.n == result["n"]
    assert result["accuracy"] == pytest.approx(direct.accuracy, abs=1e-4)
    assert result["macro_f1"] == pytest.approx(direct.macro_f1, abs=1e-4)
    assert main(["eval", "stance"]) == 0
    table = capsys.readouterr().out
    assert "macro-F1" in table and "majority baseline" in table and "0.784" in table


def test_eval_stance_needs_the_data(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"posts\.jsonl"):
        stance_eval.run(tmp_path)
