"""Source records: a person's registrations at trusts, and what happens to each record over the history.

A person is registered at one to three trusts, chosen by where they live (each district's catchment trusts) and by
referral (neighbouring trusts and the specialist centre). Each registration is a :class:`SourceRecord` with the
trust's own hospital number and the demographics the trust holds (with errors, see :mod:`regionsynth.corruption`).

Over the history a record is registered (or loaded at the start of the history), updated when the person marries,
moves or is traced, sometimes duplicated by a second registration that is later merged, sometimes renumbered. These
are :class:`PatientEvent` objects; the feed writers turn them into HL7 v2 ADT messages or FHIR Patient resources.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta

from priorscan.trusts import Trust
from regionsynth.corruption import ErrorModel, Quota, Recorded
from regionsynth.geography import Geography, WeightedChoice
from regionsynth.identifiers import PatternNumbers
from regionsynth.people import Person
from regionsynth.settings import SynthSettings

_NEWBORN_DAYS = 42  # NHS number status 08: trace postponed while a baby is under six weeks


@dataclass(slots=True)
class SourceRecord:
    """One registration of one person at one trust."""

    trust: str
    hospital_number: str
    person: Person
    registered_on: date
    recorded: Recorded
    kind: str = "primary"  # or duplicate
    duplicate_of: str | None = None
    merged_on: date | None = None
    linked_on: date | None = None
    previous_number: str | None = None  # before an A47 change of identifier
    renumbered_on: date | None = None
    nhs_known_from: date | None = None  # a newborn's number reaches the record a few weeks after birth
    duplicates: list[SourceRecord] = field(default_factory=list)
    states: list[tuple[datetime, Recorded]] = field(default_factory=list)  # filled by Registrar.events

    def number_on(self, when: date) -> str:
        """The hospital number the trust used on ``when``."""
        if self.previous_number and self.renumbered_on and when < self.renumbered_on:
            return self.previous_number
        return self.hospital_number

    def nhs_number_on(self, when: date) -> str | None:
        """The NHS number the record carried on ``when``."""
        if self.nhs_known_from and when < self.nhs_known_from:
            return None
        return self.recorded.nhs_number

    def state_on(self, when: datetime) -> Recorded:
        """The demographics the record held at ``when`` (its final state once the history is written)."""
        current = self.states[0][1] if self.states else self.recorded
        for changed, state in self.states:
            if changed > when:
                break
            current = state
        return current

    def last_event(self) -> datetime | None:
        """When the record's history last changed it."""
        return self.states[-1][0] if self.states else None

    def active_on(self, when: date) -> bool:
        """Whether the record was registered and not yet merged away on ``when``."""
        return self.registered_on <= when and (self.merged_on is None or when < self.merged_on)


@dataclass(slots=True)
class PatientEvent:
    """Something a trust's patient administration system tells the region about a record."""

    when: datetime
    kind: str  # baseline, register, update, merge, link, unlink, change-id
    record: SourceRecord
    number: str
    state: Recorded
    other: SourceRecord | None = None
    other_number: str | None = None
    other_state: Recorded | None = None


def at_office_hours(rng: random.Random, day: date) -> datetime:
    """A moment on ``day`` when a records clerk would be at work."""
    return datetime.combine(day, time(8 + rng.randrange(10), rng.randrange(60), rng.randrange(60)))


class Registrar:
    """Registers people at trusts and writes each record's history of events.

    Parameters
    ----------
    settings
        Error rates and volumes.
    trusts
        The configured trusts.
    geography
        Catchments and referral patterns.
    errors
        The error model that turns a person into what a trust records.
    as_of, history_start
        The span of the feeds.
    salt
        Varies the hospital numbers with the seed.
    """

    def __init__(self, settings: SynthSettings, trusts: tuple[Trust, ...], geography: Geography, errors: ErrorModel,
                 as_of: date, history_start: date, salt: int) -> None:
        self.settings = settings
        self.volumes = settings.volumes
        self.trusts = {t.ods: t for t in trusts}
        self.geography = geography
        self.errors = errors
        self.as_of = as_of
        self.history_start = history_start
        self.numbers = {t.ods: PatternNumbers(t.hospital_number_pattern, salt + i) for i, t in enumerate(trusts)}
        self.duplicate_quota = Quota(settings.errors.duplicate_registration)
        self._trust_count = WeightedChoice([1, 2, 3], list(self.volumes.trust_count_weights))
        self.hl7_trusts = {ods for ods in self.trusts
                           if settings.profile(ods, list(self.trusts).index(ods)).hl7_version is not None}

    def _random_day(self, rng: random.Random, start: date, end: date) -> date:
        span = (end - start).days
        return start + timedelta(days=rng.randrange(span + 1)) if span > 0 else start

    def register(self, rng: random.Random, person: Person) -> list[SourceRecord]:
        """The person's records: one per trust they are registered at, each with its duplicates attached."""
        home = self.geography.home_trust(rng, self.geography.district_of(person.address))
        trusts = [home]
        if person.previous_address is not None and rng.random() < 0.5:
            earlier = self.geography.home_trust(rng, self.geography.district_of(person.previous_address))
            if earlier not in trusts:
                trusts.append(earlier)
        wanted = self._trust_count(rng)
        while len(trusts) < wanted:
            extra = self.geography.other_trust(rng, trusts, self.volumes.specialist_referral_share)
            if extra is None:
                break
            trusts.append(extra)
        records = []
        for position, ods in enumerate(trusts):
            registered_on = self._registration_day(rng, person, position)
            records.append(self._record(rng, person, ods, registered_on))
        return records

    def _registration_day(self, rng: random.Random, person: Person, position: int) -> date:
        latest = self.as_of - timedelta(days=1)
        if position == 0:
            if person.age_on(self.as_of) < 18 and rng.random() < 0.9:
                return min(person.birth_date, latest)  # born at the local hospital
            life = (latest - person.birth_date).days
            return person.birth_date + timedelta(days=int(life * rng.random() ** 1.5))
        earliest = max(person.birth_date, self.as_of - timedelta(days=365 * 12))
        return self._random_day(rng, earliest, latest)

    def _record(self, rng: random.Random, person: Person, ods: str, registered_on: date) -> SourceRecord:
        recorded = self.errors.record(rng, person, registered_on)
        record = SourceRecord(trust=ods, hospital_number=self.numbers[ods].next(), person=person,
                              registered_on=registered_on, recorded=recorded)
        born_here = registered_on == person.birth_date and registered_on >= self.history_start
        if born_here and recorded.nhs_number is not None:
            record.nhs_known_from = person.birth_date + timedelta(days=rng.randrange(7, _NEWBORN_DAYS))
            if record.nhs_known_from > self.as_of:
                record.nhs_known_from = self.as_of
        if ods in self.hl7_trusts and rng.random() < self.volumes.identifier_change:
            start = max(registered_on, self.history_start) + timedelta(days=1)
            if start < self.as_of:
                record.previous_number = record.hospital_number
                record.hospital_number = self.numbers[ods].next()
                record.renumbered_on = self._random_day(rng, start, self.as_of)
        known_from = max(registered_on, self.history_start)
        if self.duplicate_quota.draw(rng, (self.as_of - known_from).days > 30):
            record.duplicates.append(self._duplicate(rng, record, known_from))
        return record

    def _duplicate(self, rng: random.Random, primary: SourceRecord, known_from: date) -> SourceRecord:
        person = primary.person
        day = self._random_day(rng, known_from + timedelta(days=7), self.as_of - timedelta(days=3))
        duplicate = SourceRecord(trust=primary.trust, hospital_number=self.numbers[primary.trust].next(),
                                 person=person, registered_on=day, recorded=self.errors.record(rng, person, day),
                                 kind="duplicate", duplicate_of=primary.hospital_number)
        if rng.random() < self.volumes.duplicates_merged:
            merge_day = day + timedelta(days=rng.randrange(3, 400))
            if merge_day <= self.as_of:
                duplicate.merged_on = merge_day
                if primary.trust in self.hl7_trusts and rng.random() < self.volumes.duplicate_link_first:
                    duplicate.linked_on = self._random_day(rng, day, merge_day - timedelta(days=1))
        return duplicate

    # -- histories ---------------------------------------------------------------------------------------------------
    def events(self, rng: random.Random, record: SourceRecord) -> list[PatientEvent]:
        """Every event of ``record`` (and of its duplicates), in time order."""
        out = self._history(rng, record)
        for duplicate in record.duplicates:
            history = self._history(rng, duplicate)
            out.extend(history)
            after = history[0].when
            for kind, day in (("link", duplicate.linked_on), ("merge", duplicate.merged_on)):
                if day is None:
                    continue
                when = max(at_office_hours(rng, day), after + timedelta(minutes=1))
                if kind == "merge":
                    when = max(when, (duplicate.last_event() or when) + timedelta(minutes=1))
                after = when
                out.append(PatientEvent(when, kind, record, record.number_on(day), record.state_on(when), duplicate,
                                        duplicate.number_on(day), duplicate.state_on(when)))
        out.sort(key=lambda e: e.when)
        return out

    def _history(self, rng: random.Random, record: SourceRecord) -> list[PatientEvent]:
        person, final = record.person, record.recorded
        known_from = max(record.registered_on, self.history_start)
        end = record.merged_on or self.as_of
        state = final
        changes: list[tuple[date, str]] = []
        if not final.stale_family and person.married_on and person.previous_family and known_from < person.married_on:
            state = replace(state, family=person.previous_family)
            changes.append((self._after(rng, person.married_on, end), "family"))
        if (not final.stale_address and person.moved_on and person.previous_address
                and known_from < person.moved_on):
            state = replace(state, address=person.previous_address)
            changes.append((self._after(rng, person.moved_on, end), "address"))
        if record.nhs_known_from is not None:
            state = replace(state, nhs_number=None, nhs_status="08")
            changes.append((min(record.nhs_known_from, end), "nhs"))
        if rng.random() < self.volumes.spontaneous_update and (end - known_from).days > 2:
            changes.append((self._random_day(rng, known_from + timedelta(days=1), end), "none"))
        if record.renumbered_on is not None:
            changes.append((record.renumbered_on, "number"))
        changes.sort()
        first_day = known_from if record.registered_on >= self.history_start else (
            self.history_start + timedelta(days=rng.randrange(7)))
        first_kind = "register" if record.registered_on >= self.history_start else "baseline"
        when = at_office_hours(rng, first_day)
        out = [PatientEvent(when, first_kind, record, record.number_on(first_day), state)]
        record.states = [(when, state)]
        for day, what in changes:
            day = max(day, first_day)
            if what == "family":
                state = replace(state, family=final.family)
            elif what == "address":
                state = replace(state, address=final.address)
            elif what == "nhs":
                state = replace(state, nhs_number=final.nhs_number, nhs_status=final.nhs_status)
            when = max(at_office_hours(rng, day), when + timedelta(minutes=1))
            record.states.append((when, state))
            if what == "number":
                out.append(PatientEvent(when, "change-id", record, record.hospital_number, state,
                                        other_number=record.previous_number))
            else:
                out.append(PatientEvent(when, "update", record, record.number_on(day), state))
        return out

    def _after(self, rng: random.Random, day: date, end: date) -> date:
        return min(day + timedelta(days=rng.randrange(1, 60)), end)

    def twin_mislinks(self, rng: random.Random, first: list[SourceRecord],
                      second: list[SourceRecord]) -> list[PatientEvent]:
        """Link twins' records at one trust in error (A24), then unlink them (A37) days later."""
        out: list[PatientEvent] = []
        by_trust = {r.trust: r for r in second if r.kind == "primary"}
        for record in first:
            other = by_trust.get(record.trust)
            if other is None or record.trust not in self.hl7_trusts or rng.random() >= self.volumes.twin_mislink:
                continue
            start = max(record.registered_on, other.registered_on, self.history_start) + timedelta(days=1)
            if (self.as_of - start).days < 40:
                continue
            day = self._random_day(rng, start, self.as_of - timedelta(days=35))
            undo = day + timedelta(days=rng.randrange(1, 30))
            for kind, when in (("link", day), ("unlink", undo)):
                moment = at_office_hours(rng, when)
                out.append(PatientEvent(moment, kind, record, record.number_on(when), record.state_on(moment), other,
                                        other.number_on(when), other.state_on(moment)))
        return out
