"""Human output of the data and admin commands: tables a person reads (``--json`` is for
scripts and keeps the library's dicts as they are)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from firesift.database import DatabaseStats


def size(n: int) -> str:
    """``3.6 MB``: bytes in decimal units, as file managers show them."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``5.2 h``, ``234 days``: the one unit a reader needs."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def age(epoch: float | None, now: float | None = None) -> str:
    """How long ago an instant was: ``just now``, ``3 min ago``; ``never`` for None."""
    if epoch is None:
        return "never"
    ago = max(0.0, (time.time() if now is None else now) - epoch)
    return "just now" if ago < 1 else f"{duration(ago)} ago"


def _when(t: datetime | None) -> str:
    return "-" if t is None else t.strftime("%Y-%m-%d %H:%M UTC")


def stats_view(
    stats: DatabaseStats,
    where: str,
    now: float | None = None,
    cursors: Mapping[str, str] | None = None,
) -> RenderableType:
    """Per source: posts and the time span they cover; then the store's size and the index's
    freshness (documents, changes not yet searchable, last refresh as an age); then where each
    live source will resume (``cursors``, by source key)."""
    store = stats.store
    sources = Table(title=f"Posts in {where}", title_justify="left")
    sources.add_column("source")
    sources.add_column("posts", justify="right")
    sources.add_column("first post")
    sources.add_column("last post")
    sources.add_column("span", justify="right")
    for name, s in sorted(store.sources.items()):
        span = (
            duration((s.max_created_at - s.min_created_at).total_seconds())
            if s.min_created_at and s.max_created_at
            else "-"
        )
        sources.add_row(
            name, f"{s.posts:,}", _when(s.min_created_at), _when(s.max_created_at), span
        )
    if len(store.sources) != 1:
        sources.add_row(
            Text("all", style="bold"),
            Text(f"{store.posts:,}", style="bold"),
            _when(store.min_created_at),
            _when(store.max_created_at),
            "",
        )
    lag = "caught up" if stats.index_lag == 0 else f"{stats.index_lag:,} changes behind"
    lines = Text()
    lines.append("store  ", style="bold")
    lines.append(
        f"{size(store.file_bytes)} on disk (+{size(store.wal_bytes)} write-ahead log), "
        f"{store.tombstones:,} deleted, {store.last_seq:,} changes logged\n"
    )
    lines.append("index  ", style="bold")
    lines.append(
        f"{stats.indexed_docs:,} docs, {lag}, refreshed {age(stats.index_refreshed_at, now)}"
    )
    parts: list[RenderableType] = [
        sources
        if store.sources
        else Text(f"No posts in {where} yet (firesift ingest FILE).", style="dim"),
        lines,
    ]
    if cursors:
        resume = Table("live source", "resumes after", title="Live sources", title_justify="left")
        for key, value in cursors.items():
            resume.add_row(Text(key, overflow="fold"), Text(value, overflow="fold"))
        parts.append(resume)
    return Group(*parts)


def rows_table(
    rows: Iterable[Mapping[str, Any]], columns: Iterable[str], *, empty: str
) -> RenderableType:
    """A plain table of dicts (``-`` for missing values), or ``empty`` when there are none."""
    cols = list(columns)
    table = Table(*cols)
    n = 0
    for row in rows:
        table.add_row(*(str(row.get(c) or "-") for c in cols))
        n += 1
    return table if n else Text(empty, style="dim")


def eval_view(what: str, result: Mapping[str, Any]) -> RenderableType:
    """The headline figures of ``firesift eval trends|answers`` (``--json`` has everything)."""
    table = Table("measure", "value", title=f"firesift eval {what}", title_justify="left")
    if what == "stance":
        return stance_eval_view(table, result)
    if what == "happening":
        return happening_eval_view(table, result)
    if what == "claims":
        return claims_eval_view(result)
    if what == "rerank":
        return rerank_eval_view(table, result)
    if what == "veracity":
        return veracity_eval_view(table, result)
    if what == "trends":
        s = result["summary"]
        table.add_row("events detected", f"{s['detected']} / {s['events']}")
        table.add_row("median detection delay", f"{s['median_delay_min']} stream min")
        table.add_row("slowest detection", f"{s['max_delay_min']} stream min")
        table.add_row("mean story precision", f"{s['mean_precision']:.1%}")
        table.add_row(
            "false stories per hour",
            f"{s['false_stories_per_hour']} ({s['false_stories']} in {s['scored_hours']} h)",
        )
        events = Table()
        longest = max((len(e["event"]) for e in result["events"]), default=5)
        events.add_column("event", no_wrap=True, min_width=longest)
        events.add_column("detected", no_wrap=True, min_width=8)
        events.add_column("delay", justify="right", no_wrap=True, min_width=9)
        events.add_column("precision", justify="right", no_wrap=True, min_width=9)
        events.add_column("story", no_wrap=True, overflow="ellipsis", max_width=40)
        for e in result["events"]:
            events.add_row(
                e["event"],
                "yes" if e["detected"] else Text("no", style="bold red"),
                "-" if e.get("delay_min") is None else f"{e['delay_min']} min",
                "-" if e.get("precision") is None else f"{e['precision']:.0%}",
                e.get("story_title") or "-",
            )
        return Group(table, events)
    lat = result["latency_ms"]
    claims = result["claims"]
    table.add_row("questions", f"{result['questions']} on {result['ingested']:,} posts")
    table.add_row("recall@10 (answer citations)", f"{result['recall@10']:.1%}")
    table.add_row("evidence recall@10", f"{result['evidence_recall@10']:.1%}")
    table.add_row("citation validity", f"{result['citation_validity']:.1%}")
    table.add_row("grounded answers", f"{result['grounded_share']:.1%}")
    table.add_row("latency p50 / p99", f"{lat['p50']} / {lat['p99']} ms")
    table.add_row("claim checks correct", f"{claims['accuracy']:.1%} of {claims['items']}")
    table.add_row("claim checks macro-F1", f"{claims['macro_f1']:.3f}")
    confusion = ", ".join(f"{k} {v}" for k, v in sorted(claims["confusion"].items()))
    table.add_row("claim confusion (gold->got)", confusion)
    return table


def rerank_eval_view(table: Table, result: Mapping[str, Any]) -> RenderableType:
    """Evidence recall@10 per re-ranking weight (0: retrieval's order), the held-out choice,
    and the encoder's time per question."""
    table.add_row("questions", f"{result['questions']}, top {result['candidates']} re-ranked")
    for w, recall in result["evidence_recall@10"].items():
        label = "retrieval's order" if float(w) == 0 else f"weight {w}"
        table.add_row(f"evidence recall@10, {label}", f"{recall:.3f}")
    for name, h in result["held_out"].items():
        table.add_row(
            f"weight {name}, other half",
            f"{h['recall']:.3f} (baseline {h['baseline']:.3f}, weight {h['weight']:g})",
        )
    enc = result["encode_ms"]
    table.add_row("encoder time per question p50 / p95", f"{enc['p50']} / {enc['p95']} ms")
    return table


def claims_eval_view(result: Mapping[str, Any]) -> RenderableType:
    """Per grouping: claims found leading, post recall and precision, account error, rivals."""
    n, rivals = result["questions"], result["rivals_expected"]
    table = Table(
        "grouping",
        "leads",
        "recall",
        "precision",
        "account error",
        "rivals shown",
        title=f"firesift eval claims ({n} hand-checked questions, retrieval found"
        f" {result['retrieved']:.0%} of the expected posts)",
        title_justify="left",
    )
    for name, g in result["groupings"].items():
        table.add_row(
            name,
            f"{g['leads']} / {n}",
            f"{g['recall']:.1%}",
            f"{g['precision']:.1%}",
            f"{g['account_error']:.1f}",
            f"{g['rivals_shown']} / {rivals}",
        )
    return table


def _fig(s: Mapping[str, Any]) -> str:
    return f"{s['accuracy']:.3f} / {s['macro_f1']:.3f}"


def veracity_eval_view(table: Table, result: Mapping[str, Any]) -> RenderableType:
    """Accuracy / macro-F1 of the claim check as a veracity classifier: PHEME 9
    leave-one-event-out (pooled, per event, with the rule each fold chose) and RumourEval 2017
    dev, each against the majority baseline."""
    table.columns[1].header = "accuracy / macro-F1"
    pheme = result["pheme"]
    table.add_row(
        f"PHEME 9 leave-one-event-out ({pheme['items']:,} rumours, pooled)", _fig(pheme["pooled"])
    )
    table.add_row("  majority baseline", _fig(pheme["majority"]))
    table.add_row(
        "  searched without report_weight, reply_deny_weight",
        _fig(result["without_new_constants"]["pheme"]["pooled"]),
    )
    re17 = result.get("rumoureval2017")
    if re17:
        table.add_row(f"RumourEval 2017 dev ({re17['items']} threads)", _fig(re17))
        table.add_row("  majority baseline", _fig(re17["majority"]))
    table.add_row("as of", f"source time + {result['as_of_hours']:g} h")
    folds = Table("held-out event", "rumours", "accuracy / macro-F1", "majority", "rule chosen")
    short = {
        "support_weight": "sw",
        "verified_weight": "vw",
        "min_support": "ms",
        "min_deny": "md",
        "deny_ratio": "dr",
        "reply_deny_weight": "rdw",
        "report_weight": "rw",
    }
    for f in pheme["folds"]:
        rule = " ".join(f"{short.get(k, k)}={v:g}" for k, v in f["rule"].items())
        folds.add_row(f["event"], str(f["items"]), _fig(f), _fig(f["majority"]), rule)
    return Group(table, folds)


_STATE_STYLE = {
    "connected": "green",
    "reconnecting": "yellow",
    "stopped": "bold red",
    "finished": "dim",
    "starting": "dim",
}


def _lag(value: float | None) -> str:
    return "-" if value is None else duration(max(0.0, value))


def sources_view(statuses: Iterable[Mapping[str, Any]]) -> RenderableType:
    """``firesift up``'s status: per source its state (and why), posts stored and their rate,
    the lag behind the source's clock, reconnects and errors."""
    table = Table(title="Live sources", title_justify="left")
    for col, justify in (
        ("source", "left"),
        ("state", "left"),
        ("posts", "right"),
        ("posts/s", "right"),
        ("lag", "right"),
        ("reconnects", "right"),
        ("errors", "right"),
        ("last error / reason", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for s in statuses:
        note = s["reason"] if s["state"] in ("stopped", "finished") else s["last_error"]
        ended = s["state"] in ("stopped", "finished")
        table.add_row(
            Text(s["key"], overflow="fold"),
            Text(s["state"], style=_STATE_STYLE.get(s["state"], "")),
            f"{s['posts']:,}",
            "-" if ended else f"{s['posts_per_s']:,.1f}",
            _lag(s["lag_s"]),
            str(s["reconnects"]),
            str(s["errors"]),
            Text(note or "-", overflow="fold"),
        )
    return table


def sources_line(s: Mapping[str, Any]) -> str:
    """One source's status as one log line (``firesift up`` when stderr is not a terminal)."""
    line = (
        f"{s['key']}: {s['state']}, {s['posts']:,} posts ({s['posts_per_s']:,.1f}/s), "
        f"lag {_lag(s['lag_s'])}, {s['reconnects']} reconnects, {s['errors']} errors"
    )
    note = s["reason"] if s["state"] in ("stopped", "finished") else s["last_error"]
    return f"{line}; {note}" if note else line


def registry_view(
    described: Iterable[Mapping[str, Any]], common: Mapping[str, str]
) -> RenderableType:
    """``firesift sources``: each registered source, its argument, options and needed
    settings, then the options every source takes."""
    table = Table(title="Live sources (firesift up --source NAME:ARG?opt=value)")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("what it reads")
    table.add_column("ARG and options")
    for d in described:
        parts = Text()
        if d["arg"]:
            parts.append(f"ARG: {d['arg']}{'' if d['arg_required'] else ' (optional)'}\n")
        for opt, help in d["options"].items():
            parts.append(f"{opt}", style="cyan")
            parts.append(f": {help}\n")
        if d["needs"]:
            envs = ", ".join(f"FIRESIFT_{n.upper()}" for n in d["needs"])
            parts.append(f"needs: {', '.join(d['needs'])} ({envs})\n", style="yellow")
        parts.append("resumes from a saved cursor" if d["has_cursor"] else "no resume cursor")
        table.add_row(d["name"], d["help"], parts)
    footer = Text("Every source also takes: ")
    footer.append("; ".join(f"{k} ({v})" for k, v in common.items()))
    return Group(table, footer)


def happening_eval_view(table: Table, result: Mapping[str, Any]) -> RenderableType:
    """``firesift eval happening``: mean P@30 of firesift, newest-first and BM25 (all events,
    each half), the base rate, wins, leaks; then P@30 per event and as-of."""
    s = result["summary"]
    halves = s["split"]
    table.add_row("questions", f"{s['points']} ({s['events']} events x as-of instants)")
    for name in s["p@30"]:
        first, second = halves["first_half"]["p@30"][name], halves["second_half"]["p@30"][name]
        table.add_row(f"P@30 {name}", f"{s['p@30'][name]:.1%} (halves {first:.1%} / {second:.1%})")
    table.add_row("base rate (random 30 of the matches)", f"{s['base_rate']:.1%}")
    wins = s["wins"]
    table.add_row(
        "firesift better than", f"newest {wins['newest']}, bm25 {wins['bm25']} of {s['points']}"
    )
    if "search_wins" in s:
        other = ", ".join(f"{k} {v}" for k, v in s["search_wins"].items())
        table.add_row("firesift search better than", f"{other} of {s['points']}")
    table.add_row("posts after as-of (leaks)", str(s["leaks"]))
    events = Table("event", "as-of", "matches", "firesift", "newest", "bm25", "base")
    for e in result["events"]:
        for p in e["points"]:
            got = p["p@30"]
            events.add_row(
                e["event"],
                f"+{p['hours_after_onset']:g} h",
                str(p["matches"]),
                f"{got['firesift']:.0%}",
                f"{got['newest']:.0%}",
                f"{got['bm25']:.0%}",
                f"{p['base_rate']:.0%}",
            )
    return Group(table, events)


def stance_eval_view(table: Table, result: Mapping[str, Any]) -> RenderableType:
    """``firesift eval stance``: the model against the majority baseline and the cue fallback
    on every dev reply, the published anchors, per-class F1 and the confusion matrix."""
    base, cues, anchors = result["majority"], result["cues"], result["anchors"]
    table.add_row(
        "replies scored",
        f"{result['n']} of {result['replies']} in {result['threads']} {result['split']} threads"
        f" ({result['missing']} missing)",
    )
    table.add_row("accuracy", Text(f"{result['accuracy']:.3f}", style="bold"))
    table.add_row("macro-F1", Text(f"{result['macro_f1']:.3f}", style="bold"))
    table.add_row(
        f"majority baseline ({base['label']})",
        f"accuracy {base['accuracy']:.3f}, macro-F1 {base['macro_f1']:.3f}",
    )
    table.add_row(
        "keyword cues (fallback)",
        f"accuracy {cues['accuracy']:.3f}, macro-F1 {cues['macro_f1']:.3f}",
    )
    table.add_row("thread depth agreement", f"{result['depth_agreement']:.1%}")
    table.add_row(
        "anchors (SemEval test sets)",
        f"RumourEval 2017 best accuracy {anchors['rumoureval2017_best_accuracy']}; "
        f"RumourEval 2019 best macro-F1 {anchors['rumoureval2019_best_macro_f1']}",
    )
    labels = result["labels"]
    confusion = Table(title="gold (rows) -> predicted", title_justify="left")
    confusion.add_column("gold")
    for label in labels:
        confusion.add_column(label, justify="right")
    confusion.add_column("F1", justify="right")
    for label, row in zip(labels, result["confusion"], strict=True):
        f1 = f"{result['per_class_f1'][label]:.3f}"
        confusion.add_row(label, *(str(x) for x in row), f1)
    return Group(table, confusion)


STANCE_STYLE = {"support": "green", "deny": "bold red", "query": "yellow", "comment": "dim"}


def _post_line(post: Mapping[str, Any], stance: str | None, here: bool) -> Text:
    """``[deny 0.81] @handle 2014-10-22 15:01 UTC: text``; post text only ever as plain text
    (never console markup: posts are hostile)."""
    line = Text(no_wrap=False, overflow="fold")
    if here:
        line.append("▶ ", style="bold cyan")
    if stance is not None:
        line.append(f"[{stance} {post['confidence']:.2f}]", style=STANCE_STYLE.get(stance, ""))
        line.append(" ")
    author = post["author"]
    line.append(f"@{author['handle'] or author['id']}", style="bold")
    if author["verified"]:
        line.append(" ✓", style="cyan")
    line.append(f" {post['created_at'][:16].replace('T', ' ')} UTC: ", style="dim")
    line.append(" ".join(str(post["text"]).split()))
    return line


def thread_view(thread: Any) -> RenderableType:
    """``firesift thread``: the conversation as an indented tree (each reply under its parent,
    in time order, tagged with its stance and confidence), then the tally per stance."""
    from rich.tree import Tree

    data = thread.to_dict()
    posts = data["thread"]
    keys = {p["key"] for p in posts}
    root_key = f"{data['root']['source']}:{data['root']['id']}"
    children: dict[str, list[Mapping[str, Any]]] = {}
    for p in posts:
        if p["key"] == root_key:
            continue
        parent = p["parent"] if p["parent"] in keys else root_key
        children.setdefault(parent, []).append(p)
    root = next(p for p in posts if p["key"] == root_key)
    tree = Tree(_post_line(root, None, root_key == data["key"]), guide_style="dim")
    stack = [(tree, root_key)]
    while stack:
        node, key = stack.pop()
        for p in children.get(key, []):
            stack.append((node.add(_post_line(p, p["stance"], p["key"] == data["key"])), p["key"]))
    table = Table("stance", "replies", "accounts", title="Tally", title_justify="left")
    for stance, c in data["tally"].items():
        table.add_row(
            Text(stance, style=STANCE_STYLE.get(stance, "")), str(c["posts"]), str(c["accounts"])
        )
    by = "the stance model" if data["stance_by"] == "model" else data["stance_by"]
    note = Text(
        f"{data['replies']} replies; stance towards the source post, by {by}"
        + (f"; as of {data['as_of']}" if data["as_of"] else ""),
        style="dim",
    )
    parts: list[RenderableType] = [tree, table, note]
    parts.extend(Text(f"warning: {w}", style="yellow") for w in data["warnings"])
    return Group(*parts)
