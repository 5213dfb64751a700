#!/usr/bin/env python3
"""Build the demo corpus shipped in the package from the real recorded data in data/.

    python scripts/build_demo_corpus.py [--data data] [--out src/firesift/demo]

Reads RumourEval 2017 (train + dev conversations: source tweets and their replies) and the
PHEME 9-event source tweets, merges them by tweet id (RumourEval wins: it carries the reply
structure), and writes canonical JSONL sorted by creation time, gzip-compressed and
byte-for-byte reproducible (fixed gzip mtime, sorted keys). Stance and veracity labels are not
shipped: the demo is a stream, not an answer key. The NOTICE beside it credits the sources.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

NOTICE = """firesift demo corpus (corpus.jsonl.gz)
======================================

Real public posts from breaking-news events of 2014-2015 (Ferguson, Ottawa shooting, Sydney
siege, Charlie Hebdo, Germanwings crash, and others), built by scripts/build_demo_corpus.py
from two research datasets:

- RumourEval 2017 (SemEval-2017 Task 8) training and development conversations, as
  distributed by kochkinaelena/branchLSTM. Derczynski, Bontcheva, Liakata, Procter, Wong Sak
  Hoi, Zubiaga: "SemEval-2017 Task 8: RumourEval: Determining rumour veracity and support for
  rumours", SemEval 2017. Annotations licensed CC-BY 4.0.
- PHEME dataset for Rumour Detection and Veracity Classification (9 events). Zubiaga,
  Liakata, Procter, Wong Sak Hoi, Tolmie: "Analysing How People Orient to and Spread Rumours in
  Social Media by Looking at Conversational Threads", PLoS ONE 2016; Kochkina, Liakata,
  Zubiaga: "All-in-one: Multi-task Learning for Rumour Verification", COLING 2018.
  Licensed CC-BY 4.0.

Tweet texts remain their authors' and are subject to the X/Twitter terms. The data is
included for demonstration and research; times, ids, authors and texts are as recorded.
"""


def _read(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _post(
    o: dict[str, object], *, thread: object = None, parent: object = None
) -> dict[str, object]:
    post: dict[str, object] = {
        "source": "x",
        "id": str(o["id"]),
        "created_at": o["created_at"],
        "text": o["text"],
        "lang": o.get("lang"),
        "author": {
            "id": str(o["author_id"]),
            "handle": o["author_screen_name"],
            "name": o.get("author_name") or "",
            "verified": bool(o.get("author_verified")),
            "followers": o.get("author_followers"),
        },
        "metrics": {
            "likes": int(o.get("favorite_count") or 0),
            "reposts": int(o.get("retweet_count") or 0),
        },
        "event": o.get("event"),
    }
    if o.get("urls"):
        post["urls"] = list(o["urls"])  # type: ignore[call-overload]
    if parent:
        post["reply_to"] = str(parent)
    post["conversation_id"] = str(thread or o["id"])
    return post


def build(data: Path) -> list[dict[str, object]]:
    posts: dict[str, dict[str, object]] = {}
    for o in _read(data / "pheme9" / "source_tweets.jsonl"):
        posts[str(o["id"])] = _post(o)
    for o in _read(data / "rumoureval2017" / "posts.jsonl"):
        parent = o.get("parent_id") or o.get("in_reply_to_status_id")
        posts[str(o["id"])] = _post(o, thread=o.get("thread_id"), parent=parent)
    return sorted(posts.values(), key=lambda p: (str(p["created_at"]), str(p["id"])))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=ROOT / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "src" / "firesift" / "demo")
    args = ap.parse_args()
    posts = build(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "corpus.jsonl.gz"
    body = "".join(json.dumps(p, ensure_ascii=False, sort_keys=True) + "\n" for p in posts)
    with (
        target.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
    ):
        gz.write(body.encode("utf-8"))
    (args.out / "NOTICE").write_text(NOTICE, encoding="utf-8")
    print(f"{target}: {len(posts)} posts, {target.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
