"""How a post stands to a claim, read from its wording: hedged, confirming, denying or
correcting, questioning, and counts that conflict with the claim's.

These cues separate *repeating* a claim from *evidence* about it, which a stance model trained
on replies does not: "Reports of a second gunman" asserts the rumour (hedged), "Police confirm
..." confirms it, "Police correct their info ... one gunman" corrects it. Lexical on purpose:
cheap for every post, explainable in a verdict's reason, and the same with or without a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Cues", "count_conflict", "negates", "read_cues"]

_HEDGE = re.compile(
    r"\b(?:reports?\s+(?:of|that|say|suggest)|reportedly|reported(?:ly)?|unconfirmed|"
    r"not\s+(?:yet\s+)?confirmed|may|might|could|possibl[ey]|believed?|believes|allegedly|"
    r"alleged|rumou?r(?:s|ed)?|unclear|apparently|appears?|suspected|unverified|"
    r"according\s+to|sources?\s+(?:say|said|tell|told)|claims?|speculat\w*)\b",
    re.IGNORECASE,
)
_CONFIRM = re.compile(
    r"\b(?:confirm(?:s|ed|ing)?|officially|(?:it\s+is|it'?s)\s+official|announced|"
    r"has\s+been\s+identified|have\s+been\s+identified|identified\s+as)\b",
    re.IGNORECASE,
)
_DENY = re.compile(
    r"\b(?:fake|hoax|false|not\s+true|untrue|debunk\w*|denied|denies|deny|denying|wrong|"
    r"misinformation|disinformation|no\s+evidence|isn'?t\s+true|not\s+the\s+case|"
    r"rumou?rs?\s+(?:are|is|were|was)\s+(?:false|untrue|wrong)|false\s+alarm|"
    r"not\s+(?:a|an)\s+\w+\s+(?:at\s+all)|misreport\w*|mistaken(?:ly)?|erroneous(?:ly)?|"
    r"quash\w*|dispel\w*|shot\s+down|put\s+to\s+rest)\b",
    re.IGNORECASE,
)
_CORRECT = re.compile(
    r"\b(?:correct(?:s|ed|ing|ion)?|clarif(?:y|ies|ied|ication)|retract\w*|walk(?:ed|s)?\s+back|"
    r"now\s+(?:say|says|said|believe|points?)|turns?\s+out|in\s+fact|no\s+(?:second|other|"
    r"further|additional))\b",
    re.IGNORECASE,
)
_QUESTION = re.compile(
    r"\?\s*(?:$|#|@|http)|\b(?:is\s+(?:this|it|that)\s+true|any\s+confirmation|source\s*\?|"
    r"can\s+any(?:one|body)\s+confirm|really\s*\?)",
    re.IGNORECASE,
)

_MANY = r"(?:second|two|2|three|3|several|numerous|multiple|many|more|other|another|additional)"
_ONE = r"(?:lone|single|sole|only\s+one|just\s+one|one\s+and\s+only)"
_COUNTED = r"(?:\w+\s+)?(\w{4,})"
_MANY_OF = re.compile(rf"\b{_MANY}\s+{_COUNTED}", re.IGNORECASE)
_ONE_OF = re.compile(rf"\b{_ONE}\s+{_COUNTED}", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Cues:
    hedged: bool
    confirms: bool
    denies: bool
    corrects: bool
    questions: bool


def read_cues(text: str) -> Cues:
    return Cues(
        hedged=bool(_HEDGE.search(text)),
        confirms=bool(_CONFIRM.search(text)),
        denies=bool(_DENY.search(text)),
        corrects=bool(_CORRECT.search(text)),
        questions=bool(_QUESTION.search(text)),
    )


def _stem(word: str) -> str:
    word = word.lower()
    for suffix in ("men", "ies", "es", "s"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            return word[: -len(suffix)] + ("man" if suffix == "men" else "")
    return word


def _counted(pattern: re.Pattern[str], text: str) -> set[str]:
    return {_stem(m.group(1)) for m in pattern.finditer(text)}


def count_conflict(claim: str, text: str) -> str | None:
    """The thing ``text`` counts differently from ``claim`` ("several gunmen" against "a lone
    gunman"), or None. Only explicit singulars (lone, single, only one) meet plurals and
    ordinals (second, several, numerous): a bare "one gunman was shot" does not say there
    was no other."""
    claim_many, claim_one = _counted(_MANY_OF, claim), _counted(_ONE_OF, claim)
    if not (claim_many or claim_one):
        return None
    text_many, text_one = _counted(_MANY_OF, text), _counted(_ONE_OF, text)
    both = (claim_many & text_one) | (claim_one & text_many)
    return min(both) if both else None


_NOT = re.compile(
    r"\b(?:not|no|never|nor|won'?t|isn'?t|aren'?t|wasn'?t|weren'?t|didn'?t|doesn'?t|don'?t|"
    r"hasn'?t|haven'?t|can'?t|cannot)\b((?:\W+\w+){1,3})",
    re.IGNORECASE,
)
_CONTENT = re.compile(r"[^\W\d_]{4,}")
_UNKNOWN = re.compile(
    r"\W+(?:yet|been|only|just|immediate\w*|official\w*|confirm\w*|verif\w*|clear|known|"
    r"sure|word|comment|details?|info\w*|news|reports?|indication|sign)\b",
    re.IGNORECASE,
)


def negates(claim: str, text: str) -> str | None:
    """The claim's word that ``text`` negates ("Prince will NOT be performing" against "Prince
    to perform a secret show": ``perform``), or None: a negation ("not", "no", "won't") with a
    word of the claim among the three words after it, in a post when the claim itself has
    none. Not knowing is not denying: "police have not confirmed the gunman", "no word on
    injuries" negate nothing."""
    if _NOT.search(claim):
        return None
    stems = {w.lower()[:5] for w in _CONTENT.findall(claim)}
    for m in _NOT.finditer(text):
        if _UNKNOWN.match(m.group(1)):  # "not confirmed", "no word yet": unknown, not denied
            continue
        for word in _CONTENT.findall(m.group(1)):
            if word.lower()[:5] in stems:
                return str(word).lower()
    return None
