"""Imaging orders placed in the last weeks before the as-of date, and what the duplicate check should make of them.

Orders are drawn per person from scenarios (``Volumes.order_scenarios``):

``cross-trust-repeat``
    a comparable study was done at another trust days ago, and the new order (under the other trust's hospital
    number) repeats it;
``same-trust-repeat``
    the same at one trust;
``oncology``
    CT staging or surveillance after a recent CT: a legitimate repeat, reason text ``staging``/``restaging``/
    ``surveillance``;
``trauma``
    a STAT order after an inter-trust transfer, the first trust having imaged the patient a day before;
``paediatric``
    a child's limb radiograph repeated within a month;
``new``
    an order with no planned prior (an accidental comparable prior in the history still counts).

For every order the expected tier is worked out from the whole history with the default rule table of REFERENCE.md
(:func:`expected_tier`), so accidental repeats are labelled as carefully as planned ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from regionsynth.identifiers import Counter, UidFactory
from regionsynth.imaging import Study, StudyFactory, pick_weighted
from regionsynth.people import Person
from regionsynth.procedures import Procedure, by_code
from regionsynth.registrations import SourceRecord

ONCOLOGY_REASONS = ("staging", "restaging", "surveillance")
TRAUMA_REASONS = ("Trauma - RTC, transferred", "Trauma - fall from height, transferred", "Major trauma transfer")
ROUTINE_REASONS = {"CT": "Clinical assessment", "MR": "Persistent symptoms", "XR": "Pain, ?fracture",
                   "US": "Pain, ?cause", "MG": "Breast lump", "NM": "Assessment", "RF": "Dysphagia"}


@dataclass(slots=True)
class Order:
    """One imaging order and the verdict expected of the duplicate check."""

    placer: str
    accession: str
    planned_uid: str
    record: SourceRecord
    patient_id: str
    procedure: Procedure
    description: str
    ordered: datetime
    priority: str  # routine, urgent, stat
    reason: str
    scenario: str
    prior: Study | None = None
    days_since_prior: int | None = None
    expected_tier: str = "clear"

    @property
    def trust(self) -> str:
        """ODS code of the ordering trust."""
        return self.record.trust

    @property
    def person(self) -> Person:
        """The person the order is for."""
        return self.record.person


def windows(procedure: Procedure) -> tuple[int | None, int | None]:
    """(warning, info) windows in days for comparable priors of ``procedure`` (REFERENCE.md default table)."""
    m, region = procedure.modality, procedure.region
    if m == "CT":
        return (7, 90) if region == "angio" else (30, 90)
    if m in ("MR", "NM"):
        return 30, 90
    if m == "XR":
        if region == "chest":
            return 7, 30
        if region in ("spine", "pelvis", "skull"):
            return 30, 90
        if region in ("upper-limb", "lower-limb"):
            return 14, 30
        return None, None
    if m == "US":
        return None, 30
    if m == "MG":
        return None, 180
    return None, None


def comparable(order: Procedure, prior: Procedure) -> bool:
    """Same code, or same modality and region group with compatible laterality (left is not right)."""
    if order.code == prior.code:
        return True
    if order.modality != prior.modality or order.region != prior.region:
        return False
    return not ({order.laterality, prior.laterality} == {"L", "R"})


def expected_tier(procedure: Procedure, ordered: datetime, age: int, priority: str, reason: str,
                  priors: list[Study]) -> tuple[str, Study | None]:
    """The tier (warning, info, clear) the default rules give, and the prior that decides it."""
    best: tuple[int, datetime, Study] | None = None
    for study in priors:
        if study.performed >= ordered or not comparable(procedure, study.procedure):
            continue
        days = (ordered.date() - study.performed.date()).days
        warning, info = windows(procedure)
        tier = 2 if warning is not None and days <= warning else 1 if info is not None and days <= info else 0
        if tier == 0:
            continue
        if priority == "stat" or reason in TRAUMA_REASONS or reason in ONCOLOGY_REASONS:
            tier = 1  # never suppressed, shown as information with the image link; oncology downgraded
        elif age < 16 and procedure.ionising and tier == 1:
            tier = 2  # paediatric ionising repeats escalated
        if best is None or (tier, study.performed) > (best[0], best[1]):
            best = (tier, study.performed, study)
    if best is None:
        return "clear", None
    return ("warning" if best[0] == 2 else "info"), best[2]


class OrderFactory:
    """Places orders for people, adding the planned prior studies to their history.

    Parameters
    ----------
    studies
        The study factory (planned priors are made with it, so they reach the feeds like any study).
    scenarios
        Relative weights of the scenarios.
    trust_codes
        ODS codes; placer order numbers are per trust.
    uids
        UIDs for the studies the orders will produce (IPC-3).
    as_of, window_days
        Orders are dated within ``window_days`` before ``as_of``.
    """

    def __init__(self, studies: StudyFactory, scenarios: dict[str, float], trust_codes: list[str],
                 uids: UidFactory, as_of: date, window_days: int) -> None:
        self.studies = studies
        self.scenarios = scenarios
        self.placers = {ods: Counter(f"{ods}PO", 8) for ods in trust_codes}
        self.uids = uids
        self.as_of = as_of
        self.window_days = window_days

    def order(self, rng: random.Random, person: Person, records: list[SourceRecord],
              history: list[Study]) -> Order | None:
        """One order for ``person`` (planned priors are appended to ``history``); None if nowhere to order."""
        day = self.as_of - timedelta(days=rng.randrange(self.window_days))
        moment = datetime.combine(day, time(8 + rng.randrange(12), rng.randrange(60), rng.randrange(60)))
        active = [r for r in records if r.kind == "primary" and r.registered_on < day - timedelta(days=3)]
        if not active:
            return None
        scenario = pick_weighted(rng, self.scenarios)
        age = person.age_on(day)
        if scenario == "cross-trust-repeat" and len(active) < 2:
            scenario = "same-trust-repeat"
        if scenario == "paediatric" and age >= 16:
            scenario = "new"
        if scenario == "oncology" and age < 18:
            scenario = "new"
        order_record = rng.choice(active)
        if scenario == "trauma":  # major trauma goes to an acute trust, not the specialist centre
            acute = [r for r in active if r.trust != "RPC"]
            order_record = rng.choice(acute) if acute else order_record
        priority, reason = ("urgent" if rng.random() < 0.2 else "routine"), ""
        if scenario == "new":
            procedure = self.studies.picker.pick(rng, person.sex, age)
        else:
            procedure, gap, prior_record = self._plan(rng, scenario, person, age, active, order_record)
            prior_day = day - timedelta(days=gap)
            if prior_day <= prior_record.registered_on or prior_day < self.studies.history_start:
                scenario, procedure = "new", self.studies.picker.pick(rng, person.sex, age)
            else:
                prior_moment = moment - timedelta(days=gap, hours=rng.randrange(1, 6)) if gap == 0 else None
                prior = self.studies.make(rng, prior_record, procedure, prior_day, reason="order-prior",
                                          performed=prior_moment)
                history.append(prior)
                history.sort(key=lambda s: s.performed)
                if rng.random() < 0.3 and scenario.endswith("repeat"):
                    procedure = self.studies.picker.comparable_to(rng, procedure, same_code=False)
            if scenario == "oncology":
                reason = rng.choice(ONCOLOGY_REASONS)
            elif scenario == "trauma":
                priority, reason = "stat", rng.choice(TRAUMA_REASONS)
        reason = reason or ROUTINE_REASONS.get(procedure.modality, "Assessment")
        profile = self.studies.profiles[order_record.trust]
        order = Order(placer=self.placers[order_record.trust].next(),
                      accession=self.studies.accessions[order_record.trust].next(), planned_uid=self.uids.next("study"),
                      record=order_record, patient_id=order_record.number_on(day), procedure=procedure,
                      description=procedure.description(profile.description_style), ordered=moment,
                      priority=priority, reason=reason, scenario=scenario)
        order.expected_tier, order.prior = expected_tier(procedure, moment, age, priority, reason, history)
        if order.prior is not None:
            order.days_since_prior = (day - order.prior.performed.date()).days
        return order

    def _plan(self, rng: random.Random, scenario: str, person: Person, age: int, active: list[SourceRecord],
              order_record: SourceRecord) -> tuple[Procedure, int, SourceRecord]:
        """The prior's procedure, its distance in days before the order, and the record it is filed under."""
        others = [r for r in active if r.trust != order_record.trust]
        elsewhere = rng.choice(others) if others else order_record
        codes = by_code()
        if scenario == "oncology":
            return codes[rng.choice(("CCHAPC", "CCHAPC", "CCHEC"))], rng.randrange(20, 80), rng.choice(active)
        if scenario == "trauma":
            return codes[rng.choice(("CHEAD", "CSPIC", "CHEAD"))], rng.randrange(0, 2), elsewhere
        if scenario == "paediatric":
            code = rng.choice(("XWRIL", "XWRIR", "XANKL", "XANKR", "XELBL", "XELBR"))
            return codes[code], rng.randrange(15, 29), rng.choice(active)
        planned = [codes[c] for c in ("CHEAD", "CCHAPC", "CABPEC", "CPULA", "MHEAD", "MSPIL", "XCHES", "XKNEL",
                                      "XWRIR", "CCHEC", "MKNER")]
        procedure = rng.choice([p for p in planned if p.suits(person.sex, age)] or [codes["XCHES"]])
        warning, _ = windows(procedure)
        gap = rng.randrange(1, (warning or 14) + 1)
        return procedure, gap, elsewhere if scenario == "cross-trust-repeat" else order_record
