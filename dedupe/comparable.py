"""The judgement: which of a patient's exams are comparable recent priors of a request, and at which tier.

Pure: it works on plain dataclasses that the storage adapter (:mod:`dedupe.priors`) fills, and on the region and
laterality vocabulary of the imaging index (:mod:`dedupe.vocabulary`), so every rule and exception can be tested
without a database, and requests and studies are compared in one vocabulary.

Comparable
    Same procedure (the same code in the same code system, of the same modality when both are known; a code of a
    local code system, such as HL7's ``L`` or ``99zzz``, only between exams of one trust), or the same modality
    **and** regions that image a common part (the imaging vocabulary's ``comparable_regions``: chest compares with
    chest-abdomen-pelvis, not with abdomen-pelvis; limbs the same part, spine the same level; CT angiography within
    one vascular territory) **and** compatible laterality (left and right differ; both matches either; unknown
    matches anything; a side counts only where a region has one: limbs, breast, peripheral vessels). Every region a
    request or a study names counts ("CT head and cervical spine" is both), and a region the rule file's
    ``coverage`` says a study stands in for counts too (a whole-body trauma CT covers a CT head).
    Cancelled exams never count; only completed and scheduled ones (and outstanding orders) do.

Days ago
    Calendar days between the prior's date (performed, or scheduled / ordered for outstanding ones) and the request's
    date, both in the consortium's time zone: a prior on the same day is 0 days ago, one on the day before is 1.
    Window edges are inclusive: with CT's 30/90 days a prior 30 days ago is a warning, 31 days ago info, 90 days ago
    info and 91 days ago not shown. An exam performed after the request (a historic order replayed late) is no prior.

Tier, in this order
    1. the table: the rule of the request's modality and region group gives warning / info / nothing (a region no
       rule names takes the rules of the parts it images: an XR KUB the pelvis rule, a babygram the chest rule; for
       a request naming several regions, the rule of each region the prior compares with, the loudest; a prior with
       the same procedure code whose region no rule names takes the rule file's ``same_procedure`` windows); an
       outstanding order or scheduled exam for a comparable procedure is flagged at any age (``outstanding-order``);
    2. paediatric (under 16 at the request date) and ionising: the info tier is escalated to warning;
    3. trauma / emergency / STAT, oncology staging / restaging / surveillance, planned follow-up: warning is downgraded
       to info (never suppressed: the prior is still shown with its image link) — except in pregnancy (ionising,
       a region that is, or images, one of the rule file's pregnancy regions), which is never downgraded;
    4. inter-trust transfer (stated in the reason, or a prior at another trust within the transfer window): warning.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from dedupe.circumstances import ONCOLOGY, PAEDIATRIC, PLANNED_FOLLOW_UP, PREGNANCY, TRANSFER, TRAUMA
from dedupe.rules import Rule, RuleSet, Severity
from dedupe.vocabulary import (
    canonical_system,
    comparable_regions,
    is_paired,
    laterality_compatible,
    region_group,
    region_parts,
)

OUTSTANDING_ORDER = "outstanding-order"
BY_CODE = "procedure-code"
BY_REGION = "modality-region"
_DOWNGRADES = (TRAUMA, ONCOLOGY, PLANNED_FOLLOW_UP)
_RANK = {"warning": 2, "info": 1}


@dataclass(frozen=True)
class Procedure:
    """A procedure as the normaliser understands it (the vocabulary requests and studies share)."""

    modality: str | None
    body_region: str | None
    laterality: str | None = None  # left | right | both | none | None (unknown)
    code_system: str | None = None
    code: str | None = None
    regions: tuple[str, ...] = ()  # every region named, ``body_region`` first; empty when only ``body_region`` is
    #: each region's own side when they differ by region ("left wrist and right ankle"); ``laterality`` is then
    #: ``both``, and each region is compared on its own side
    sides: tuple[tuple[str, str], ...] = ()

    def side_of(self, region: str) -> str | None:
        """The side ``region`` is examined on: its own when the procedure names sides by region, else the
        procedure's."""
        return next((side for named, side in self.sides if named == region), self.laterality)

    @property
    def named_regions(self) -> tuple[str, ...]:
        """Every region the procedure names (``body_region`` first), empty when the region is unknown."""
        return tuple(dict.fromkeys((self.body_region, *self.regions) if self.body_region else self.regions))

    @property
    def code_key(self) -> tuple[str, str] | None:
        """The code as compared: one name per code system, codes in upper case."""
        return (canonical_system(self.code_system), self.code.strip().upper()) if self.code else None

    @property
    def local_code(self) -> bool:
        """Whether the code is in a local code system (none named, ``L``, ``LOCAL``, HL7's ``99zzz``): the same
        code at two trusts need not be the same procedure."""
        system = canonical_system(self.code_system).upper()
        return system in ("", "L", "LOCAL") or system.startswith("99")


@dataclass(frozen=True)
class RequestFacts:
    """The request as judged: its procedure, date, trust, circumstances and the patient's age."""

    procedure: Procedure
    request_date: date
    requesting_trust: str | None = None
    circumstances: frozenset[str] = frozenset()
    patient_age_years: int | None = None
    requested_at: datetime | None = None  # when known, exams performed after it are no priors


@dataclass(frozen=True)
class Exam:
    """One of the patient's exams: a study (completed or scheduled) or an outstanding order."""

    kind: str  # study | order
    status: str  # completed | scheduled | active | cancelled ...
    procedure: Procedure
    on_date: date | None  # performed, scheduled or ordered
    trust: str | None = None
    at: datetime | None = None
    study_instance_uid: str | None = None
    accession_number: str | None = None
    placer_order_number: str | None = None
    description: str | None = None
    effective_dose_msv: float | None = None

    @property
    def outstanding(self) -> bool:
        if self.kind == "order":
            return self.status == "active"
        return self.status == "scheduled"


@dataclass(frozen=True)
class ComparablePrior:
    """An exam shown with a request: why it is comparable, how old, at which tier and by which rule."""

    exam: Exam
    days_ago: int
    severity: Severity
    rule: str
    rule_text: str
    match: str  # procedure-code | modality-region
    circumstances: tuple[str, ...] = ()


@dataclass(frozen=True)
class Judgement:
    verdict: str  # warning | info | clear
    priors: list[ComparablePrior] = field(default_factory=list)


def _named_rule(rules: RuleSet, modality: str, region: str | None) -> Rule | None:
    """The first rule of the table naming ``modality`` and ``region`` or the region's group (or any region)."""
    group = region_group(region)
    for rule in rules.rules:
        if modality not in rule.modalities:
            continue
        if rule.any_region or (region is not None and (region in rule.regions or group in rule.regions)):
            return rule
    return None


def rules_for(rules: RuleSet, procedure: Procedure, region: str | None = None) -> list[Rule]:
    """The rules of the table for the procedure's modality and ``region`` (its body region when None): the first
    naming the region or its group; when none does, the first naming each part the region images, so that a
    combined region takes its parts' rules (a radiograph of the abdomen and pelvis, a KUB, is judged by the pelvis
    rule; a babygram, chest and abdomen, by the chest's)."""
    if not procedure.modality:
        return []
    region = region if region is not None else procedure.body_region
    named = _named_rule(rules, procedure.modality, region)
    if named is not None:
        return [named]
    by_part = (_named_rule(rules, procedure.modality, part) for part in region_parts(region))
    return list({rule.id: rule for rule in by_part if rule is not None}.values())


def rule_for(rules: RuleSet, procedure: Procedure, region: str | None = None) -> Rule | None:
    """The first of :func:`rules_for`: the rule naming the procedure's modality and ``region`` (its body region when
    None) or the region's group, else one naming a part of the region."""
    found = rules_for(rules, procedure, region)
    return found[0] if found else None


def _same_procedure(rules: RuleSet, procedure: Procedure) -> Rule | None:
    fallback = rules.same_procedure
    if fallback is None or (procedure.modality and procedure.modality not in fallback.modalities):
        return None
    return fallback


def matched_regions(rules: RuleSet, request: Procedure, exam: Procedure) -> tuple[str, ...]:
    """The regions of ``request`` that ``exam`` compares with (same modality; coverage applied to both sides)."""
    if not request.modality or request.modality != exam.modality:
        return ()
    found = []
    for region in request.named_regions:
        ours = rules.covered(request.modality, (region,))
        theirs = rules.covered(exam.modality, _on_a_compatible_side(request.side_of(region), exam, region))
        if any(comparable_regions(a, b, request.modality) for a in ours for b in theirs):
            found.append(region)
    return tuple(found)


def _on_a_compatible_side(side: str | None, exam: Procedure, region: str | None = None) -> tuple[str, ...]:
    """The regions of ``exam`` examined on a side compatible with ``side`` (the side of the request's ``region``);
    a side matters only where one of the two regions has one (limbs, breast, peripheral vessels): "CTPA ?right
    heart strain" is a CTPA whatever side an earlier one's question named."""
    return tuple(r for r in exam.named_regions
                 if not (is_paired(r) or is_paired(region)) or laterality_compatible(side, exam.side_of(r)))


def _sides_matter(request: Procedure, exam: Procedure) -> bool:
    """Whether either procedure names a region that has a side (only there can left and right differ)."""
    return any(is_paired(r) for r in (*request.named_regions, *exam.named_regions))


def same_procedure_code(request: Procedure, exam: Procedure, same_trust: bool = True) -> bool:
    """The same code in the same code system, of the same modality when both are known; a local code only within
    one trust (``same_trust``)."""
    if request.code_key is None or request.code_key != exam.code_key:
        return False
    if request.modality and exam.modality and request.modality != exam.modality:
        return False
    return same_trust or not request.local_code


def match_kind(request: Procedure, exam: Procedure, rules: RuleSet | None = None, *,
               same_trust: bool = True) -> str | None:
    """How ``exam`` is comparable with ``request`` (by code, or by modality and region), or None.

    Without ``rules`` no coverage applies (a whole-body study compares only with whole-body ones). ``same_trust``
    says whether the exam is of the requesting trust (a local code compares only there).
    """
    if _sides_matter(request, exam) and not laterality_compatible(request.laterality, exam.laterality):
        return None
    if same_procedure_code(request, exam, same_trust):
        return BY_CODE
    if rules is not None:
        return BY_REGION if matched_regions(rules, request, exam) else None
    if (request.modality and request.modality == exam.modality
            and any(comparable_regions(a, b, request.modality)
                    for a in request.named_regions for b in _on_a_compatible_side(request.side_of(a), exam, a))):
        return BY_REGION
    return None


def _loudest_rule(rules: RuleSet, request: Procedure, regions: tuple[str, ...], days: int) -> Rule | None:
    """Of the rules of ``regions`` (the request's regions the prior compares with), the one giving the highest tier
    for a prior ``days`` old; the first region's rule when none shows it."""
    candidates = [rule for region in regions for rule in rules_for(rules, request, region)]
    if not candidates:
        return rule_for(rules, request)
    return max(candidates, key=lambda r: _RANK.get(r.tier(days) or "", 0))


def days_between(earlier: date, later: date) -> int:
    """Calendar days from ``earlier`` to ``later`` (0 on the same day)."""
    return (later - earlier).days


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_date(moment: datetime, timezone: str) -> date:
    """The calendar date of ``moment`` in ``timezone`` (a naive moment is taken as already local)."""
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(_zone(timezone)).date()


def local_moment(moment: datetime, timezone: str) -> datetime:
    """``moment`` with its offset: one without (a request's time as a client wrote it, "2026-03-30T00:30:00") is the
    trusts' local time (REFERENCE.md: the sender's local time), so it can be compared with the studies' times."""
    return moment.replace(tzinfo=_zone(timezone)) if moment.tzinfo is None else moment


def _after_request(request: RequestFacts, exam: Exam) -> bool:
    if exam.outstanding or exam.on_date is None:
        return False
    if request.requested_at is not None and exam.at is not None:
        return exam.at > request.requested_at
    return exam.on_date > request.request_date


def _tier(rules: RuleSet, request: RequestFacts, exam: Exam, base: Severity,
          ionising: bool) -> tuple[Severity, tuple[str, ...]]:
    applied: list[str] = []
    tier = base
    if ionising and request.patient_age_years is not None \
            and request.patient_age_years < rules.exceptions.paediatric.age_under_years:
        if tier == "info":
            tier = "warning"
            applied.append(PAEDIATRIC)
    downgrades = [c for c in _DOWNGRADES if c in request.circumstances]
    pregnancy_regions = rules.exceptions.pregnancy.regions
    # a region images the fetus when it, its group or a part it images is a pregnancy region (a whole-spine
    # radiograph images the lumbar spine)
    pregnancy = (PREGNANCY in request.circumstances and ionising
                 and any(part in pregnancy_regions or region_group(part) in pregnancy_regions
                         for region in request.procedure.named_regions for part in (region, *region_parts(region))))
    if pregnancy:
        applied.append(PREGNANCY)
    elif downgrades:
        applied.extend(downgrades)
        tier = "info"
    transfer_window = rules.exceptions.transfer.other_trust_within_days
    transfer = TRANSFER in request.circumstances or (
        transfer_window is not None and exam.trust and request.requesting_trust
        and exam.trust != request.requesting_trust and exam.on_date is not None
        and 0 <= days_between(exam.on_date, request.request_date) <= transfer_window)
    if transfer:
        applied.append(TRANSFER)
        tier = "warning"
    return tier, tuple(applied)


def judge(rules: RuleSet, request: RequestFacts, exams: Iterable[Exam]) -> Judgement:
    """The comparable priors of ``request`` among ``exams`` (the patient's, from every trust), and the verdict.

    Parameters
    ----------
    rules
        The rule table.
    request
        The request, normalised.
    exams
        The patient's studies and outstanding orders (the request's own order already left out).

    Returns
    -------
    Judgement
        ``warning`` when any prior is a warning, ``info`` when only info priors are shown, ``clear`` otherwise;
        priors sorted by tier, then most recent first.
    """
    ionising = bool(request.procedure.modality and request.procedure.modality in rules.ionising_modalities)
    found: list[ComparablePrior] = []
    for exam in exams:
        if exam.status == "cancelled" or _after_request(request, exam):
            continue
        same_trust = not (exam.trust and request.requesting_trust) or exam.trust == request.requesting_trust
        how = match_kind(request.procedure, exam.procedure, rules, same_trust=same_trust)
        if how is None:
            continue
        days = days_between(exam.on_date, request.request_date) if exam.on_date else 0
        regions = matched_regions(rules, request.procedure, exam.procedure)
        exam_rule = _loudest_rule(rules, request.procedure, regions, days)
        if exam_rule is None and how == BY_CODE:
            exam_rule = rule_for(rules, exam.procedure) or _same_procedure(rules, exam.procedure)
        base: Severity | None = exam_rule.tier(days) if exam_rule else None
        rule_id = exam_rule.id if exam_rule else ""
        rule_text = exam_rule.describe() if exam_rule else ""
        if exam.outstanding:
            flagged = rules.outstanding_orders.severity
            base = flagged if base is None or _RANK[flagged] > _RANK[base] else base
            rule_id, rule_text = OUTSTANDING_ORDER, "outstanding order or scheduled exam for a comparable procedure"
        if base is None:
            continue
        tier, applied = _tier(rules, request, exam, base, ionising)
        found.append(ComparablePrior(exam, days, tier, rule_id, rule_text, how, applied))
    found.sort(key=lambda p: (-_RANK[p.severity], p.days_ago, p.exam.study_instance_uid or ""))
    verdict = found[0].severity if found else "clear"
    return Judgement(verdict, found)

