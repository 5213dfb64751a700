"""Terminal rendering of answers and verdicts (``firesift ask`` / ``chat`` / ``check``).

Post text is hostile: it is never interpreted as rich markup. Everything is built with
:class:`rich.text.Text` and styles, so a post containing ``[link=...]`` or ``[bold]`` prints
literally. Each ``[n]`` marker in the answer and each numbered source is an OSC-8 hyperlink to
the post (``Style(link=url)``), clickable in terminals that support it.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.style import Style
from rich.text import Text

from firesift.answer.citations import MARKER
from firesift.answer.model import Answer, Verdict

__all__ = ["render_answer", "render_verdict"]

_VERDICT_STYLE = {
    "supported": "bold green",
    "disputed": "bold red",
    "unverified": "bold yellow",
    "insufficient": "dim",
}
_ROLE_TITLE = {
    "confirms": "confirm it",
    "supports": "back it in replies",
    "denies": "deny or correct it",
    "questions": "question it",
    "reports": "only repeat it",
    "comments": "comment",
}


def _linked(text: str, urls: dict[int, str]) -> Text:
    out = Text()
    pos = 0
    for m in MARKER.finditer(text):
        out.append(text[pos : m.start()])
        for raw in m.group(1).split(","):
            n = int(raw)
            url = urls.get(n, "")
            out.append(f"[{n}]", style=Style(color="cyan", link=url) if url else "cyan")
        pos = m.end()
    out.append(text[pos:])
    return out


def render_answer(answer: Answer) -> RenderableType:
    """The answer text with clickable ``[n]`` markers, then the numbered sources and any
    warnings."""
    urls = {c.n: c.post.url for c in answer.citations if c.post.url}
    parts: list[RenderableType] = [_linked(answer.text, urls)]
    if answer.citations:
        parts.append(Text())
        parts.append(Text("Sources", style="bold"))
        for c in answer.citations:
            p = c.post
            line = Text()
            line.append(f"[{c.n}] ", style=Style(color="cyan", link=p.url) if p.url else "cyan")
            line.append(f"@{p.author.handle}", style="bold")
            line.append(f" · {p.created_at.strftime('%Y-%m-%d %H:%M UTC')}", style="dim")
            if c.stance:
                line.append(f" · {c.stance}", style="italic")
            line.append("\n    ")
            line.append(" ".join(p.text.split())[:280])
            if p.url:
                line.append("\n    ")
                line.append(p.url, style=Style(dim=True, link=p.url))
            parts.append(line)
    for w in answer.warnings:
        parts.append(Text(f"warning: {w}", style="yellow"))
    return Group(*parts)


def render_verdict(verdict: Verdict) -> RenderableType:
    """The verdict with its confidence and reason, then the evidence grouped by role."""
    head = Text()
    head.append(verdict.verdict.upper(), style=_VERDICT_STYLE[verdict.verdict])
    head.append(f"  {verdict.claim}")
    head.append(f"  (confidence {verdict.confidence:.2f})\n", style="dim")
    head.append(verdict.reason, style="dim")
    parts: list[RenderableType] = [head]
    for role, title in _ROLE_TITLE.items():
        group = [e for e in verdict.evidence if e.role == role]
        if not group:
            continue
        c = verdict.roles.get(role, {})
        posts, accounts, verified = c.get("posts", 0), c.get("accounts", 0), c.get("verified", 0)
        parts.append(
            Text(
                f"\n{accounts} account{'s' * (accounts != 1)} {title} · "
                f"{posts} post{'s' * (posts != 1)}"
                + (f", {verified} verified" if verified else ""),
                style="bold",
            )
        )
        for e in group[:5]:
            line = Text("  ")
            line.append(
                f"@{e.post.author.handle}",
                style=Style(bold=True, link=e.post.url) if e.post.url else "bold",
            )
            line.append(f" {e.post.created_at.strftime('%m-%d %H:%M')} ", style="dim")
            line.append(" ".join(e.post.text.split())[:200])
            if e.hedged:
                line.append("  (hedged)", style="dim italic")
            parts.append(line)
    for w in verdict.warnings:
        parts.append(Text(f"warning: {w}", style="yellow"))
    return Group(*parts)
