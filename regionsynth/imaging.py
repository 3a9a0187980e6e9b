"""Imaging histories: each person's studies over the years, with their doses and the feed that delivers them.

A person's study count follows a Poisson law around the national rate (about 0.8 tests per person per year, more for
the old, fewer for children), spread over the years they were alive and registered within the history. Some studies
are followed by a comparable one weeks later (follow-up or repeat), and a registration at a second trust usually
comes with a study there (the referral that caused it).

Each study is delivered by exactly one primary feed: DICOM (the recent ones, with dose from RDSRs and image
headers), HL7 ORU^R01 or FHIR ImagingStudy (the older ones, by trust); some are re-sent to exercise idempotency.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from regionsynth.geography import WeightedChoice, population_table
from regionsynth.identifiers import Counter, UidFactory
from regionsynth.people import Person
from regionsynth.procedures import Procedure, ProcedurePicker
from regionsynth.registrations import SourceRecord
from regionsynth.settings import SynthSettings, TrustFeedProfile

_MG_VIEWS = {"B": [("R", "CC"), ("R", "MLO"), ("L", "CC"), ("L", "MLO")], "L": [("L", "CC"), ("L", "MLO")],
             "R": [("R", "CC"), ("R", "MLO")]}


@dataclass(slots=True)
class DoseEvent:
    """One irradiation event: a CT acquisition, a radiograph, a mammographic view or a fluoroscopy run."""

    uid: str
    ctdivol_mgy: float = 0.0
    dlp_mgycm: float = 0.0
    dap_dgycm2: float = 0.0  # as image headers write it; Gy.m2 = dGy.cm2 * 1e-5
    agd_mgy: float = 0.0
    laterality: str = ""
    view: str = ""
    fluoro_s: float = 0.0


@dataclass(slots=True)
class Series:
    """One series of a study; DICOM writes one representative image header for it."""

    uid: str
    number: int
    modality: str
    description: str
    laterality: str = ""
    view: str = ""
    events: list[DoseEvent] = field(default_factory=list)


@dataclass(slots=True)
class Study:
    """One imaging study, as performed."""

    uid: str
    accession: str
    record: SourceRecord
    patient_id: str
    procedure: Procedure
    description: str
    performed: datetime
    feed: str  # dicom, oru or fhir
    resent: bool = False
    reason: str = "history"  # history, follow-up, referral, order-prior
    series: list[Series] = field(default_factory=list)
    rdsr: bool = False
    rdsr_partial_events: int = 0  # events in the first, partial RDSR of a re-sent CT study

    @property
    def trust(self) -> str:
        """ODS code of the performing trust."""
        return self.record.trust

    @property
    def person(self) -> Person:
        """The person imaged."""
        return self.record.person

    @property
    def events(self) -> list[DoseEvent]:
        """Every irradiation event of the study, in series order."""
        return [e for s in self.series for e in s.events]


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; a normal approximation for large means)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


class StudyFactory:
    """Makes studies for people, with identifiers, series and dose.

    Parameters
    ----------
    settings
        Volumes and each trust's profile.
    trust_codes
        ODS codes in configuration order (profiles of unconfigured trusts are borrowed by position).
    uids
        The seed's UID factory.
    as_of, history_start
        The span of the history.
    """

    def __init__(self, settings: SynthSettings, trust_codes: list[str], uids: UidFactory, as_of: date,
                 history_start: date) -> None:
        self.settings = settings
        self.volumes = settings.volumes
        self.profiles: dict[str, TrustFeedProfile] = {ods: settings.profile(ods, i) for i, ods in
                                                      enumerate(trust_codes)}
        self.uids = uids
        self.as_of = as_of
        self.history_start = history_start
        self.picker = ProcedurePicker(dict(self.volumes.modality_mix))
        self.accessions = {ods: Counter(p.accession_prefix, 8) for ods, p in self.profiles.items()}
        bands = sorted((int(k), float(v)) for k, v in population_table()["imaging_by_age"].items())
        pyramid = {int(k): float(v) for k, v in population_table()["age_pyramid"].items()}
        self._age_bands = bands
        mean_factor = sum(w * self.age_factor(age + 2) for age, w in pyramid.items()) / sum(pyramid.values())
        # follow-ups come on top of the drawn studies, so the draw leaves room for them
        self._base_rate = self.volumes.tests_per_person_year / mean_factor / (1 + self.volumes.follow_up_share)

    def age_factor(self, age: int) -> float:
        """Imaging use at ``age`` relative to the population average."""
        return next((f for lower, f in reversed(self._age_bands) if age >= lower), 1.0)

    # -- histories ---------------------------------------------------------------------------------------------------
    def history(self, rng: random.Random, person: Person, records: list[SourceRecord]) -> list[Study]:
        """The person's studies over the history, in time order."""
        start = max(person.birth_date, self.history_start)
        years = max((self.as_of - start).days, 0) / 365.25
        mean = self._base_rate * self.age_factor(person.age_on(self.as_of)) * years
        studies: list[Study] = []
        span = (self.as_of - start).days
        for _ in range(poisson(rng, mean)):
            day = start + timedelta(days=rng.randrange(max(span, 1)))
            study = self.study_on(rng, person, records, day)
            if study is not None:
                studies.append(study)
        home = records[0].trust if records else None
        for record in records:
            if record.trust != home and record.registered_on >= self.history_start:
                day = record.registered_on + timedelta(days=rng.randrange(0, 30))
                if day < self.as_of:
                    study = self.study_on(rng, person, [record], day, reason="referral",
                                          specialist=self._is_specialist(record.trust))
                    if study is not None:
                        studies.append(study)
        for study in list(studies):
            if rng.random() < self.volumes.follow_up_share:
                day = study.performed.date() + timedelta(days=rng.randrange(7, 121))
                if day < self.as_of:
                    same_trust = [r for r in records if r.trust == study.trust]
                    chosen = same_trust if rng.random() < 0.7 else records
                    follow = self.study_on(rng, person, chosen, day, reason="follow-up",
                                           procedure=self.picker.comparable_to(rng, study.procedure,
                                                                               rng.random() < 0.7))
                    if follow is not None:
                        studies.append(follow)
        studies.sort(key=lambda s: s.performed)
        return studies

    def _is_specialist(self, ods: str) -> bool:
        return ods == "RPC"

    def study_on(self, rng: random.Random, person: Person, records: list[SourceRecord], day: date,
                 reason: str = "history", procedure: Procedure | None = None, specialist: bool = False,
                 trust: str | None = None) -> Study | None:
        """A study of ``person`` on ``day`` at one of ``records``' trusts (None if none is registered by then)."""
        active = [r for r in records if r.kind == "primary" and r.registered_on <= day and (trust is None or
                                                                                             r.trust == trust)]
        if not active:
            return None
        age = person.age_on(day)
        if procedure is None:
            procedure = self.picker.pick(rng, person.sex, age, specialist=specialist)
        specialist_record = next((r for r in active if self._is_specialist(r.trust)), None)
        if specialist_record is not None and procedure.specialist and rng.random() < 0.6:
            record = specialist_record
        else:
            home = [r for r in active if not self._is_specialist(r.trust)] or active
            record = home[0] if rng.random() < 0.8 else rng.choice(active)
        for duplicate in record.duplicates:
            if duplicate.active_on(day) and rng.random() < 0.5:
                record = duplicate
        return self.make(rng, record, procedure, day, reason)

    def make(self, rng: random.Random, record: SourceRecord, procedure: Procedure, day: date,
             reason: str = "history", performed: datetime | None = None) -> Study:
        """A study of ``procedure`` for ``record`` on ``day``, with its feed, series and dose decided."""
        profile = self.profiles[record.trust]
        recent = (self.as_of - day).days <= self.volumes.dicom_recent_days
        feed = "dicom" if recent or rng.random() < self.volumes.dicom_older_share else profile.result_feed
        when = performed or datetime.combine(day, time(rng.choice((8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21,
                                                                   23)), rng.randrange(60), rng.randrange(60)))
        study = Study(uid=self.uids.next("study"), accession=self.accessions[record.trust].next(), record=record,
                      patient_id=record.number_on(day), procedure=procedure,
                      description=procedure.description(profile.description_style), performed=when, feed=feed,
                      resent=rng.random() < self.volumes.resend_share, reason=reason)
        self._series(rng, study)
        return study

    # -- series and dose ---------------------------------------------------------------------------------------------
    def _series(self, rng: random.Random, study: Study) -> None:
        p = study.procedure
        dicom = study.feed == "dicom"

        def series(number: int, description: str, laterality: str = p.laterality, view: str = "") -> Series:
            """Add a series to the study."""
            uid = self.uids.next("series") if study.feed != "oru" else ""  # ORU results name no series
            s = Series(uid, number, p.modality, description, laterality, view)
            study.series.append(s)
            return s

        def event() -> DoseEvent:
            """A new irradiation event (with a UID when it will be written to DICOM)."""
            return DoseEvent(self.uids.next("event") if dicom else "")

        if p.modality == "CT":
            count = p.events + (1 if rng.random() < 0.15 else 0)
            if dicom and study.resent and count < 2:
                count = 2
            for n in range(count):
                s = series(n + 2, f"{p.short} {'Axial' if n == 0 else f'Phase {n + 1}'}")
                if dicom:
                    e = event()
                    e.ctdivol_mgy = round(p.ctdivol * rng.lognormvariate(0, 0.25), 2)
                    length = p.scan_cm / p.events * rng.uniform(0.8, 1.2)
                    e.dlp_mgycm = round(e.ctdivol_mgy * length, 2)
                    s.events.append(e)
            study.rdsr = dicom and (study.resent or rng.random() < self.volumes.ct_rdsr_share)
            study.rdsr_partial_events = count - 1 if study.resent else 0
        elif p.modality in ("XR", "RF"):
            views = ["AP", "LAT", "OBL"][:p.views] if p.modality == "XR" else ["FLUORO"]
            for n, view in enumerate(views):
                s = series(n + 1, f"{p.short} {view}", view=view)
                if dicom:
                    e = event()
                    e.view = view
                    e.dap_dgycm2 = round(p.dap_gycm2 * 10 * rng.lognormvariate(0, 0.35), 4) or 0.0001
                    if p.modality == "RF":
                        e.fluoro_s = round(rng.uniform(30, 300), 1)
                    s.events.append(e)
            study.rdsr = dicom and (p.modality == "RF" or rng.random() < self.volumes.xr_rdsr_share)
        elif p.modality == "MG":
            for n, (side, view) in enumerate(_MG_VIEWS.get(p.laterality or "B", _MG_VIEWS["B"])):
                s = series(n + 1, f"{side}{view}", laterality=side, view=view)
                if dicom:
                    e = event()
                    e.laterality, e.view = side, view
                    e.agd_mgy = round(p.agd_mgy * rng.lognormvariate(0, 0.2), 2) or 0.01
                    s.events.append(e)
            study.rdsr = dicom and rng.random() < 0.6
        else:
            for n in range(rng.choice((1, 2, 2, 3))):
                series(n + 1, f"{p.short} {n + 1}")


def pick_weighted(rng: random.Random, options: dict[str, float]) -> str:
    """One key of ``options`` chosen by its weight."""
    return WeightedChoice(list(options), list(options.values()))(rng)
