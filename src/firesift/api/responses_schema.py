"""Request bodies of ``/v1/responses``, and the server-side tools with xAI's names and rules.

Validated with pydantic where untrusted input enters; unknown fields are ignored (clients add
new ones all the time). Tools are looked up in :data:`TOOLS` by ``type`` (an unknown type is a
400 naming the registry's keys); each tool checks xAI's rules (:meth:`rules`: mutually exclusive
lists, list lengths, date order: 400s naming the parameter) and adds its restrictions to one
:class:`Constraints`, which becomes the request's :class:`~firesift.answer.model.Filters`.
See :mod:`firesift.api.responses` for what each tool means over a post stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from firesift.answer.model import Filters
from firesift.api.errors import APIError, from_validation
from firesift.api.openai_compat import domain_of

__all__ = [
    "NO_INLINE",
    "TOOLS",
    "Constraints",
    "InputItem",
    "InputPart",
    "ResponsesRequest",
    "SearchTool",
    "WebFilters",
    "WebSearchTool",
    "XSearchTool",
]

NO_INLINE = "no_inline_citations"
_TEXT_PARTS = ("input_text", "output_text", "text")


class _Body(BaseModel):
    # strict: no coercion of 0 to false, "5" to 5 (OpenAI and xAI refuse them too)
    model_config = ConfigDict(extra="ignore", strict=True)


class InputPart(_Body):
    """One content part; ``input_text``, ``output_text`` and ``text`` parts carry text."""

    type: str
    text: str | None = None


class InputItem(_Body):
    """A message of ``input`` (an "easy" ``{role, content}`` message or ``type: "message"``);
    other item types (tool calls, reasoning) carry nothing firesift reads and are skipped."""

    type: str | None = None
    id: str | None = None
    role: Literal["user", "assistant", "system", "developer"] | None = None
    content: str | list[InputPart] | None = None

    def is_message(self) -> bool:
        return self.type in (None, "message")

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(
            p.text
            for p in self.content
            if p.type in ("input_text", "output_text", "text") and p.text
        )


def _instant(value: str | None, *, end: bool) -> datetime | None:
    """``YYYY-MM-DD`` (the whole UTC day: ``end`` gives the next midnight) or ISO 8601."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = datetime.fromisoformat(value).replace(tzinfo=UTC)
            return day + timedelta(days=1) if end else day
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"expected a date as YYYY-MM-DD or an ISO 8601 time, got {value!r}"
        ) from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _strip_at(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    out = [v.strip().removeprefix("@") for v in values]
    if any(not v for v in out):
        raise ValueError("a handle may not be empty")
    return out


def _domains(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    out = [domain_of(v.strip()).lower() for v in values]
    if any(not v or "." not in v for v in out):
        raise ValueError(f"expected domains such as example.com, got {values!r}")
    return out


class XSearchTool(_Body):
    """xAI's ``x_search``: firesift's whole post stream, whatever sources feed it."""

    type: Literal["x_search"]
    allowed_x_handles: list[str] | None = None
    excluded_x_handles: list[str] | None = None
    from_date: str | None = None
    to_date: str | None = None
    enable_image_understanding: bool = False
    enable_video_understanding: bool = False

    _check_handles = field_validator("allowed_x_handles", "excluded_x_handles")(_strip_at)

    @field_validator("from_date", "to_date")
    @classmethod
    def _dates(cls, value: str | None) -> str | None:
        _instant(value, end=False)
        return value

    def rules(self) -> tuple[str, str] | None:
        """The broken xAI rule as ``(param, message)``, if any."""
        if self.allowed_x_handles and self.excluded_x_handles:
            return "allowed_x_handles", (
                "allowed_x_handles and excluded_x_handles cannot be used together"
            )
        for name in ("allowed_x_handles", "excluded_x_handles"):
            values = getattr(self, name) or []
            if len(values) > 10:
                return name, f"{name} takes at most 10 handles (got {len(values)})"
        lo, hi = _instant(self.from_date, end=False), _instant(self.to_date, end=True)
        if lo and hi and lo >= hi:
            return "from_date", "from_date is after to_date"
        return None

    def apply(self, acc: Constraints) -> None:
        acc.include_handles += self.allowed_x_handles or []
        acc.exclude_handles += self.excluded_x_handles or []
        if (lo := _instant(self.from_date, end=False)) is not None:
            acc.since.append(lo)
        if (hi := _instant(self.to_date, end=True)) is not None:
            acc.until.append(hi)
        if self.enable_image_understanding or self.enable_video_understanding:
            acc.warnings.append(
                "x_search: image and video understanding are not available; firesift reads "
                "post text"
            )


class WebFilters(_Body):
    allowed_domains: list[str] | None = None

    _check_domains = field_validator("allowed_domains")(_domains)


class WebSearchTool(_Body):
    """xAI's ``web_search``: firesift has no web index; it searches posts, and the domain
    lists keep the posts that link (or do not link) those domains. OpenAI's spelling,
    ``filters.allowed_domains``, counts as ``allowed_domains`` (same rules), so an OpenAI
    client's restriction is never silently dropped."""

    type: Literal["web_search"]
    allowed_domains: list[str] | None = None
    excluded_domains: list[str] | None = None
    filters: WebFilters | None = None
    enable_image_understanding: bool = False

    _check_domains = field_validator("allowed_domains", "excluded_domains")(_domains)

    @model_validator(mode="after")
    def _openai_filters(self) -> WebSearchTool:
        if self.filters and self.filters.allowed_domains:
            merged = [*(self.allowed_domains or []), *self.filters.allowed_domains]
            self.allowed_domains = list(dict.fromkeys(merged))
        return self

    def rules(self) -> tuple[str, str] | None:
        if self.allowed_domains and self.excluded_domains:
            return "allowed_domains", "allowed_domains and excluded_domains cannot be used together"
        for name in ("allowed_domains", "excluded_domains"):
            values = getattr(self, name) or []
            if len(values) > 5:
                return name, f"{name} takes at most 5 domains (got {len(values)})"
        return None

    def apply(self, acc: Constraints) -> None:
        acc.include_domains += self.allowed_domains or []
        acc.exclude_domains += self.excluded_domains or []
        acc.warnings.append(
            "web_search: firesift has no web index; it searched posts"
            + (" linking the given domains" if self.allowed_domains else "")
        )


SearchTool = XSearchTool | WebSearchTool
TOOLS: dict[str, type[XSearchTool] | type[WebSearchTool]] = {
    "x_search": XSearchTool,
    "web_search": WebSearchTool,
}
"""The server-side tools firesift runs, by ``type``."""


@dataclass(slots=True)
class Constraints:
    """What the tools of one request restrict, gathered; :meth:`filters` intersects them."""

    since: list[datetime] = field(default_factory=list)
    until: list[datetime] = field(default_factory=list)
    include_handles: list[str] = field(default_factory=list)
    exclude_handles: list[str] = field(default_factory=list)
    include_domains: list[str] = field(default_factory=list)
    exclude_domains: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def filters(self) -> Filters:
        return Filters(
            since=max(self.since) if self.since else None,
            until=min(self.until) if self.until else None,
            include_handles=tuple(dict.fromkeys(self.include_handles)),
            exclude_handles=tuple(dict.fromkeys(self.exclude_handles)),
            include_domains=tuple(dict.fromkeys(self.include_domains)),
            exclude_domains=tuple(dict.fromkeys(self.exclude_domains)),
        )


class ResponsesRequest(_Body):
    model: str = "firesift-extractive"
    input: str | list[InputItem]
    instructions: str | None = None
    stream: bool = False
    previous_response_id: str | None = None
    include: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    store: bool = True
    as_of: str | None = None
    """firesift extension: answer as of this instant (ISO 8601, or a relative time)."""
    search_parameters: Any = None
    """Live Search: refused with 410 on this endpoint (see the module docstring)."""

    @field_validator("input")
    @classmethod
    def _has_text(cls, value: str | list[InputItem]) -> str | list[InputItem]:
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("the input is empty")
            return value
        for i, item in enumerate(value):
            if item.is_message() and item.role is None:
                raise ValueError(f"input item {i} is a message without a role")
        if not any(m.is_message() and m.role == "user" and m.text().strip() for m in value):
            raise ValueError("the input needs at least one user message with text")
        return value

    def inline_citations(self) -> bool:
        return NO_INLINE not in (self.include or [])

    def search_tools(self) -> list[SearchTool]:
        """The tools, validated: 400 for an unknown type or a broken rule, 422 for a bad value."""
        out: list[SearchTool] = []
        for i, raw in enumerate(self.tools or []):
            kind = raw.get("type") if isinstance(raw, dict) else None
            model = TOOLS.get(kind) if isinstance(kind, str) else None
            if model is None:
                raise APIError(
                    400,
                    f"tools[{i}]: unsupported tool type {kind!r}; firesift runs "
                    f"{', '.join(sorted(TOOLS))}",
                    param=f"tools.{i}.type",
                    code="unsupported_tool",
                )
            try:
                tool = model.model_validate(raw)
            except ValidationError as e:
                raise from_validation(e, prefix=f"tools.{i}") from None
            broken = tool.rules()
            if broken is not None:
                raise APIError(
                    400, f"tools[{i}] ({kind}): {broken[1]}", param=f"tools.{i}.{broken[0]}"
                )
            out.append(tool)
        return out
