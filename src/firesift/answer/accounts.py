"""What kind of account wrote a post: a news organisation, an official body, a verified person,
or an anonymous account.

Read from the account's handle and display name (and the source's verified flag), so it works
on every stream without a curated list; it is a reader's hint next to a count ("7 accounts, 5
news organisations"), never a reason to trust a post. The word lists are small on purpose:
a miss leaves an account "verified" or "anonymous", which is what the stream itself says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from firesift.post import Author

__all__ = ["KINDS", "AccountKind", "account_kind", "kind_counts"]

AccountKind = Literal["news", "official", "verified", "anonymous"]
KINDS: tuple[AccountKind, ...] = ("news", "official", "verified", "anonymous")

_NEWS = re.compile(
    r"news|cnn|bbc|reuters|^ap$|^ap[A-Z_]|^abc|^cbc|^ctv|^nbc|^cbs|^fox|^sky|^itv|^rtl|^npr|"
    r"times|post$|guardian|telegraph|journal|herald|tribune|gazette|press|radio|^aj[a-z]|"
    r"aljazeera|france24|^dw[_ ]|daily|globe|breaking|^wsj|^nyt|^afp|bloomberg|televis|"
    r"\btv\b|tv$|^tv|media|magazine|courier|chronicle|observer|independent|standard$",
    re.IGNORECASE,
)
_OFFICIAL = re.compile(
    r"police|polic[ií]a|polizei|^rcmp|^gov|government|ministry|minister|^pm[o_ ]|"
    r"whitehouse|white house|department|^dept|embassy|^army|military|forces|^fbi|^cia|^nypd|"
    r"^lapd|^dhs|^fema|^un[a-z]*$|mayor|council|sheriff|fire ?dep|firefighters|rescue|"
    r"parliament|senate|congress|prime minister|premier",
    re.IGNORECASE,
)


def account_kind(author: Author) -> AccountKind:
    """``news`` or ``official`` from the handle or display name, else ``verified`` when the
    source says so, else ``anonymous``."""
    names = (author.handle, author.name or "")
    if any(_OFFICIAL.search(n) for n in names):
        return "official"
    if any(_NEWS.search(n) for n in names):
        return "news"
    return "verified" if author.verified else "anonymous"


def kind_counts(authors: Iterable[Author]) -> dict[str, int]:
    """Distinct accounts (by id, else handle) per kind, every kind present (0 when none)."""
    seen: dict[str, AccountKind] = {}
    for a in authors:
        seen.setdefault(a.id or a.handle, account_kind(a))
    out: dict[str, int] = dict.fromkeys(KINDS, 0)
    for kind in seen.values():
        out[kind] += 1
    return out
