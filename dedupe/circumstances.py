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

from dedupe.rules import KeywordTrigger, Negation, PregnancyException, RuleSet

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


def _code_hit(codes: Iterable[str], wanted: Iterable[str]) -> bool:
    wanted = set(wanted)
    for code in codes:
        bare = code.rsplit("|", 1)[-1]
        if code in wanted or bare in wanted:
            return True
    return False


# A reason as tokens: words, clause boundaries (BOUNDARY) and the query mark (QUERY). A hyphen inside a word
# ("post-op") is part of it; one standing between words ("Pregnant - not for contrast") ends a clause.
BOUNDARY = "|"
QUERY = "?"
_TOKEN = re.compile(r"[a-z0-9]+(?:['’-][a-z0-9]+)*|\?|[.;:!,()\[\]\n]|(?<!\S)[-–—]+|[-–—]+(?!\S)|\s[/]\s")


#: UK clinical shorthand read as the words it stands for before a reason is split into words: "+ve" and "-ve"
#: (positive, negative), "f/u" (follow up: "routine f/u" is the rule file's "routine follow up"), and the gestation of
#: a pregnancy in weeks over forty ("28/40": 28 weeks' gestation; not "6/52", an interval of weeks)
_SHORTHAND = (
    (re.compile(r"(?<![a-z0-9])f\s?/\s?u(?![a-z0-9])"), " follow up "),
    (re.compile(r"(?<![a-z0-9])\+\s?ve\b"), " positive "),
    (re.compile(r"(?<![a-z0-9])[-–]\s?ve\b"), " negative "),
    (re.compile(r"\b([4-9]|[1-3][0-9]|4[0-2])(?:\+[0-6])?\s?/\s?40\b"), r" \1 weeks gestation "),
)


#: An obstetric history as UK notes write it: gravida and para, with miscarriages and terminations after a plus
#: ("G2P1", "G3 P1+1", "G1P0"), and a gestation in weeks after it ("G2P1 at 20 weeks", "G2P1, 20+3 wks")
_GRAVIDA_PARA = re.compile(r"(?<![a-z0-9])g\s?(\d{1,2})\s?p\s?(\d{1,2})(?:\s?\+\s?(\d{1,2}))?(?![a-z0-9])"
                           r"(?P<gestation>[\s,]+(?:at\s+)?(?:[4-9]|[1-3][0-9]|4[0-2])(?:\+[0-6])?\s?"
                           r"(?:weeks?|wks?|w)(?![a-z0-9]))?")


def _gravida_para(match: re.Match[str]) -> str:
    """A pregnancy now when a gestation follows the history, or when it counts more pregnancies than births, losses
    and terminations (gravida counts the current pregnancy: G2P1 is pregnant, G2P1+1 and G2P2 are not); else words
    that assert nothing."""
    gravida, para, losses = (int(n) if n else 0 for n in match.group(1, 2, 3))
    if match.group("gestation") or gravida > para + losses:
        return " pregnant "
    return " obstetric history "


@lru_cache(maxsize=1024)
def _tokens(text: str) -> tuple[str, ...]:
    text = _GRAVIDA_PARA.sub(_gravida_para, text.lower())
    for pattern, words in _SHORTHAND:
        text = pattern.sub(words, text)
    found = []
    for token in _TOKEN.findall(text):
        if token == QUERY:
            found += [BOUNDARY, QUERY]
        elif token[0].isalnum():
            found.append(token.replace("’", "'"))
        else:
            found.append(BOUNDARY)
    return tuple(found)


def _hits(tokens: tuple[str, ...], phrases: Iterable[str]) -> list[tuple[int, int]]:
    """Where each phrase occurs as consecutive words: ``(start, end)`` token positions."""
    found = []
    for keyword in phrases:
        phrase = _phrase(keyword)
        n = len(phrase)
        if n:
            found += [(i, i + n) for i in range(len(tokens) - n + 1) if tokens[i:i + n] == phrase]
    return found


@dataclass(frozen=True)
class _Reading:
    """Where the negation cues of a reason are, computed once per reason and rule set."""

    tokens: tuple[str, ...]
    before_ends: frozenset[int]  # token positions right after a before-cue (that is no pseudo-negation)
    after_starts: frozenset[int]
    queried: frozenset[int]  # word positions a "?" or an uncertainty cue governs
    terminators: frozenset[str]
    answers: frozenset[str]
    window: int

    def _words_between(self, start: int, end: int) -> int | None:
        """Words from ``start`` to ``end`` (exclusive) when no boundary or terminator lies between; else None."""
        between = self.tokens[start:end]
        if BOUNDARY in between or any(t in self.terminators for t in between):
            return None
        return len(between)

    def negated(self, start: int, end: int) -> bool:
        for cue_end in self.before_ends:
            if cue_end <= start:
                gap = self._words_between(cue_end, start)
                if gap is not None and gap <= self.window:
                    return True
        for cue_start in self.after_starts:
            if cue_start >= end:
                gap = self._words_between(end, cue_start)
                if gap is not None and gap <= self.window:
                    return True
        return self._answered_no(end)

    def _answered_no(self, end: int) -> bool:
        """"Pregnant: no", "Pregnant? N", "Pregnancy - negative": the next clause is a single negative answer."""
        if end >= len(self.tokens) or self.tokens[end] != BOUNDARY:
            return False
        at = end
        while at < len(self.tokens) and self.tokens[at] in (BOUNDARY, QUERY):
            at += 1
        return (at < len(self.tokens) and self.tokens[at] in self.answers
                and (at + 1 == len(self.tokens) or self.tokens[at + 1] == BOUNDARY))


@lru_cache(maxsize=1024)
def _reading(text: str, negation: Negation) -> _Reading:
    tokens = _tokens(text)
    pseudo_starts = {start for start, _ in _hits(tokens, negation.pseudo)}
    before_ends = frozenset(end for start, end in _hits(tokens, negation.before) if start not in pseudo_starts)
    after_starts = frozenset(start for start, _ in _hits(tokens, negation.after))
    queried: set[int] = set()
    cue_ends = [end for _, end in _hits(tokens, negation.uncertain)]
    cue_ends += [i + 1 for i, t in enumerate(tokens) if t == QUERY]
    for at in cue_ends:
        while at < len(tokens) and tokens[at] != BOUNDARY:
            queried.add(at)
            at += 1
    return _Reading(tokens, before_ends, after_starts, frozenset(queried), frozenset(negation.terminators),
                    frozenset(negation.answers), negation.window)


def _asserted(trigger: KeywordTrigger, negation: Negation, text: str) -> bool:
    """Whether ``text`` asserts one of the trigger's keywords: named, not negated, not inside an exclusion, and not
    only queried (unless the trigger counts queried keywords)."""
    reading = _reading(text, negation)
    excluded = _hits(reading.tokens, trigger.exclusions)
    for start, end in _hits(reading.tokens, trigger.keywords):
        if any(e_start <= start and end <= e_end for e_start, e_end in excluded):
            continue
        if not trigger.uncertain_counts and start in reading.queried:
            continue
        if reading.negated(start, end):
            continue
        return True
    return False


def mentions(trigger: KeywordTrigger, reason: RequestReason, negation: Negation | None = None) -> bool:
    """Whether ``reason`` states the circumstance by code, or asserts it in words (whole words, any case; negation
    applies to the term it negates, within its clause)."""
    if reason.codes and _code_hit(reason.codes, trigger.codes):
        return True
    if not reason.text:
        return False
    return _asserted(trigger, negation or Negation(), reason.text)


def mentions_pregnancy(trigger: PregnancyException, reason: RequestReason, negation: Negation | None = None) -> bool:
    """An explicit answer wins; otherwise a code, or a keyword the reason asserts ("not pregnant" and "pregnancy
    test negative" do not; "Pregnant - not for contrast" and "?pregnant" do)."""
    if reason.pregnant is not None:
        return reason.pregnant
    return mentions(trigger, reason, negation)


def read_circumstances(rules: RuleSet, *, priority: str | None, reason: RequestReason) -> frozenset[str]:
    """The circumstances a request states (paediatric age and transfer by prior are judged per prior)."""
    found: set[str] = set()
    exceptions = rules.exceptions
    negation = rules.negation
    if normalise_priority(priority) in exceptions.trauma.priorities or mentions(exceptions.trauma, reason, negation):
        found.add(TRAUMA)
    if mentions(exceptions.transfer, reason, negation):
        found.add(TRANSFER)
    if mentions(exceptions.oncology, reason, negation):
        found.add(ONCOLOGY)
    if mentions(exceptions.planned_follow_up, reason, negation):
        found.add(PLANNED_FOLLOW_UP)
    if mentions_pregnancy(exceptions.pregnancy, reason, negation):
        found.add(PREGNANCY)
    return frozenset(found)
