"""xAI ``search_parameters`` and Perplexity filters mapped to :class:`Filters` (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from firesift.api.errors import from_validation
from firesift.api.openai_compat import build_filters
from firesift.api.schemas import ChatRequest

NOW = datetime(2025, 3, 10, 12, tzinfo=UTC)


def request(**fields: Any) -> ChatRequest:
    return ChatRequest.model_validate(
        {"messages": [{"role": "user", "content": "what is happening?"}], **fields}
    )


def test_xai_search_parameters() -> None:
    f, warnings = build_filters(
        request(
            search_parameters={
                "from_date": "2025-03-01",
                "to_date": "2025-03-02",
                "max_search_results": 7,
                "sources": [
                    {
                        "type": "x",
                        "excluded_x_handles": ["spam"],
                        "post_favorite_count": 5,
                        "post_view_count": 100,
                    },
                    {"type": "news", "country": "US"},
                ],
            }
        ),
        None,
        NOW,
    )
    assert f.since == datetime(2025, 3, 1, tzinfo=UTC)
    assert f.until == datetime(2025, 3, 3, tzinfo=UTC)  # to_date is inclusive
    assert f.max_results == 7
    assert f.exclude_handles == ("spam",) and f.include_handles == ()
    assert (f.min_likes, f.min_views) == (5, 100)
    assert f.sources == ()
    assert len(warnings) == 1 and "news" in warnings[0]


def test_rss_source_restricts_to_feeds_of_those_domains() -> None:
    f, _ = build_filters(
        request(
            search_parameters={
                "sources": [{"type": "rss", "links": ["https://www.example.org/feed.xml"]}]
            }
        ),
        None,
        NOW,
    )
    assert f.sources == ("rss",)
    assert f.include_domains == ("example.org",)


def test_perplexity_filters_intersect() -> None:
    as_of = datetime(2025, 3, 5, 18, tzinfo=UTC)
    f, _ = build_filters(
        request(
            search_recency_filter="day",
            search_after_date_filter="3/1/2025",
            search_before_date_filter="3/6/2025",
            search_domain_filter=["Reuters.com", "-spam.example"],
        ),
        as_of,
        NOW,
    )
    assert f.since == datetime(2025, 3, 4, 18, tzinfo=UTC)  # the later of the two
    assert f.until == datetime(2025, 3, 6, tzinfo=UTC)
    assert f.include_domains == ("reuters.com",)
    assert f.exclude_domains == ("spam.example",)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"search_parameters": {"mode": "sometimes"}}, "search_parameters.mode"),
        ({"search_parameters": {"max_search_results": 0}}, "search_parameters.max_search_results"),
        ({"search_parameters": {"to_date": "2025/03/01"}}, "search_parameters.to_date"),
        (
            {"search_parameters": {"sources": [{"type": "x", "included_x_handles": ["a"] * 11}]}},
            "search_parameters.sources.0.x.included_x_handles",
        ),
        (
            {
                "search_parameters": {
                    "sources": [
                        {"type": "x", "included_x_handles": ["a"], "excluded_x_handles": ["b"]}
                    ]
                }
            },
            "search_parameters.sources.0.x",
        ),
        ({"search_parameters": {"sources": [{"type": "telegram"}]}}, "search_parameters.sources.0"),
        ({"search_recency_filter": "decade"}, "search_recency_filter"),
        ({"search_after_date_filter": "2025-03-01"}, "search_after_date_filter"),
        ({"search_domain_filter": ["a.com"] * 21}, "search_domain_filter"),
        ({"search_domain_filter": ["not a domain"]}, "search_domain_filter"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages.0.content.str"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
    ],
)
def test_invalid_fields_are_named(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(ValidationError) as exc:
        request(**fields)
    err = from_validation(exc.value)
    assert err.status == 422
    assert err.param == param


def test_multipart_content_and_unknown_fields() -> None:
    req = request(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hello"},
                    {"type": "image_url", "image_url": {}},
                ],
            }
        ],
        temperature=0.3,
        logit_bias={"1": 2},
    )
    assert req.messages[0].text() == "hello"
