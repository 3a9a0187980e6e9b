"""The circumstances of a request that change how its priors are tiered: trauma, transfer, oncology, planned
follow-up, pregnancy (paediatric age is a fact of the patient, not read from text).

They are read from the request's priority, its coded reasons and the words of its free-text reason, with the
keywords and codes of the rule file. Pure functions: no storage, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from dedupe.rules import KeywordTrigger, PregnancyException, RuleSet

TRAUMA = "trauma"
TRANSFER = "transfer"
ONCOLOGY = "oncology"
PLANNED_FOLLOW_UP = "planned-follow-up"
PAEDIATRIC = "paediatric"
PREGNANCY = "pregnancy"

_PRIORITY_WORDS = {
    "s": "stat", "stat": "stat", "emergency": "stat", "e": "stat", "immediate": "stat",
    "a": "asap", "asap": "asap", "u": "urgent", "urgent": "urgent",
    "r": "routine", "routine": "routine", "p": "routine", "t": "urgent", "c": "routine",
}
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def normalise_priority(value: str | None) -> str | None:
    """HL7 (S, A, R ...), FHIR (stat, asap, urgent, routine) and free text priorities as FHIR's words."""
    if not value:
        return None
    return _PRIORITY_WORDS.get(value.strip().lower(), value.strip().lower())


@dataclass(frozen=True)
class RequestReason:
    """What the requester said about why: free text and codes (``system|code`` or bare codes)."""

    text: str | None = None
    codes: tuple[str, ...] = ()
    pregnant: bool | None = None  # an explicit answer, when the order carries one


def _words(text: str | None) -> list[str]:
    return _WORD.findall(text.lower()) if text else []


@lru_cache(maxsize=512)
def _phrase(keyword: str) -> tuple[str, ...]:
    return tuple(_words(keyword))


def _find(words: list[str], phrase: tuple[str, ...]) -> list[int]:
    n = len(phrase)
    if not n:
        return []
    return [i for i in range(len(words) - n + 1) if tuple(words[i:i + n]) == phrase]


def _code_hit(codes: Iterable[str], wanted: Iterable[str]) -> bool:
    wanted = set(wanted)
    for code in codes:
        bare = code.rsplit("|", 1)[-1]
        if code in wanted or bare in wanted:
            return True
    return False


@lru_cache(maxsize=64)
def _keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern for all the keywords, matched against the reason's words joined by single spaces."""
    phrases = sorted({" ".join(_phrase(k)) for k in keywords if _phrase(k)}, key=len, reverse=True)
    if not phrases:
        return None
    return re.compile(r"(?<![a-z0-9'-])(?:" + "|".join(re.escape(p) for p in phrases) + r")(?![a-z0-9'-])")


def mentions(trigger: KeywordTrigger, reason: RequestReason) -> bool:
    """Whether ``reason`` names the circumstance by code or by keyword (whole words, any case)."""
    if reason.codes and _code_hit(reason.codes, trigger.codes):
        return True
    if not reason.text:
        return False
    pattern = _keyword_pattern(trigger.keywords)
    return bool(pattern and pattern.search(" ".join(_words(reason.text))))


def mentions_pregnancy(trigger: PregnancyException, reason: RequestReason) -> bool:
    """An explicit answer wins; otherwise a keyword not negated (``not pregnant``, ``pregnancy test negative``)."""
    if reason.pregnant is not None:
        return reason.pregnant
    if reason.codes and _code_hit(reason.codes, trigger.codes):
        return True
    if not reason.text:
        return False
    words = _words(reason.text)
    negations = set(trigger.negations)
    for keyword in trigger.keywords:
        phrase = _phrase(keyword)
        for at in _find(words, phrase):
            before = words[max(0, at - 3):at]
            after = words[at + len(phrase):at + len(phrase) + 2]
            if negations.isdisjoint(before) and negations.isdisjoint(after):
                return True
    return False


def read_circumstances(rules: RuleSet, *, priority: str | None, reason: RequestReason) -> frozenset[str]:
    """The circumstances a request states (paediatric age and transfer by prior are judged per prior)."""
    found: set[str] = set()
    exceptions = rules.exceptions
    if normalise_priority(priority) in exceptions.trauma.priorities or mentions(exceptions.trauma, reason):
        found.add(TRAUMA)
    if mentions(exceptions.transfer, reason):
        found.add(TRANSFER)
    if mentions(exceptions.oncology, reason):
        found.add(ONCOLOGY)
    if mentions(exceptions.planned_follow_up, reason):
        found.add(PLANNED_FOLLOW_UP)
    if mentions_pregnancy(exceptions.pregnancy, reason):
        found.add(PREGNANCY)
    return frozenset(found)
