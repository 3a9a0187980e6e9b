"""Writing a whole synthetic region: people, their records, studies and orders, streamed into the feeds.

The region is generated household by household. Each household's people are registered at trusts, given histories,
studies and orders, and then written out at once: DICOM files directly, HL7 and FHIR items into time-sorted feeds
(:mod:`regionsynth.sinks`), truth rows into ``truth/``. Nothing but the sorted-feed buffers and a small ring of
recent NHS numbers outlives a household, so memory does not grow with the size of the region.

Output layout::

    DIR/hl7/<ODS>/adt.hl7              ADT in event-time order (HL7 trusts)
    DIR/hl7/<ODS>/oru.hl7              ORU^R01 results of studies not delivered as DICOM
    DIR/hl7/<ODS>/orders.hl7           ORM^O01 (v2.3/2.4) or OMI^O23 (v2.5)
    DIR/fhir/<ODS>/patients-NNNN.json  Patient Bundles (transaction, every n-th a batch)
    DIR/fhir/<ODS>/patients.ndjson     Patient resources of some records, as NDJSON
    DIR/fhir/<ODS>/patients-snapshot.ndjson   current records of a trust that also offers FHIR
    DIR/fhir/<ODS>/imagingstudies.ndjson      ImagingStudy of studies not delivered as DICOM
    DIR/fhir/<ODS>/servicerequests-NNNN.json  ServiceRequest Bundles (orders)
    DIR/dicom/<ODS>/<StudyInstanceUID>/...     image headers and RDSRs
    DIR/truth/...                      ground truth (see regionsynth.truth)
"""

from __future__ import annotations

import os
import random
import shutil
import uuid
import zlib
from collections import Counter as Tally
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from priorscan.errors import InputError
from priorscan.trusts import Trust, TrustRegistry
from regionsynth import fhir_feeds
from regionsynth.corruption import ErrorModel
from regionsynth.dicom_files import DicomWriterPool, plan
from regionsynth.geography import Geography
from regionsynth.hl7_feeds import Hl7Dialect
from regionsynth.identifiers import NhsNumberAllocator, UidFactory
from regionsynth.imaging import Study, StudyFactory
from regionsynth.orders import Order, OrderFactory
from regionsynth.people import Person, PopulationGenerator
from regionsynth.procedures import NICIP_SYSTEM
from regionsynth.registrations import PatientEvent, Registrar, SourceRecord
from regionsynth.settings import SynthSettings
from regionsynth.sinks import BundleWriter, FeedSet, Hl7FileWriter, NdjsonWriter
from regionsynth.truth import TruthWriter

SCRATCH = ".regionsynth-tmp"
FORMAT_VERSION = 1
_MERGE_EVENTS = {"merge": "A40", "link": "A24", "unlink": "A37", "change-id": "A47"}


@dataclass(frozen=True)
class RegionRequest:
    """What to generate."""

    out: Path
    people: int
    seed: int
    as_of: date
    years: int = 5


def _prepare(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        ours = (out / "truth" / "manifest.json").exists() or (out / SCRATCH).exists()
        if not ours:
            raise InputError("the output folder is not empty and holds no earlier synthetic region",
                             code="input.synth-out")
        for sub in ("hl7", "fhir", "dicom", "truth", SCRATCH):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


class RegionWriter:
    """Generates and writes one region (see the module docstring).

    Parameters
    ----------
    request
        Size, seed, as-of date, history length and output folder.
    trusts
        The consortium's trusts.
    settings
        Error rates, volumes and feed dialects.
    """

    def __init__(self, request: RegionRequest, trusts: TrustRegistry, settings: SynthSettings,
                 workers: int = 0) -> None:
        if request.people < 1:
            raise InputError("--people must be at least 1", code="input.synth-people")
        if request.people > NhsNumberAllocator.capacity:
            raise InputError(f"at most {NhsNumberAllocator.capacity} people: the 999 test range holds no more "
                             "valid NHS numbers", code="input.synth-people")
        self.request = request
        self.settings = settings
        self.out = request.out
        self.as_of = request.as_of
        self.history_start = request.as_of - timedelta(days=round(365.25 * request.years))
        self.trusts: dict[str, Trust] = {t.ods: t for t in trusts.trusts}
        codes = list(self.trusts)
        self.profiles = {ods: settings.profile(ods, i) for i, ods in enumerate(codes)}
        seed = request.seed
        self.uids = UidFactory(seed)
        self.nhs = NhsNumberAllocator(salt=seed * 7_919)
        self.geography = Geography(codes)
        self.population = PopulationGenerator(settings.volumes, self.as_of, self.history_start, self.geography,
                                              self.nhs)
        self._recent: deque[tuple[str, str]] = deque(maxlen=5_000)
        self._listed: dict[str, bool] = {}
        self.errors = ErrorModel(settings.errors, self.nhs, self._someone_else)
        self.registrar = Registrar(settings, trusts.trusts, self.geography, self.errors, self.as_of,
                                   self.history_start, salt=seed)
        self.studies = StudyFactory(settings, codes, self.uids, self.as_of, self.history_start)
        self.orders = OrderFactory(self.studies, dict(settings.volumes.order_scenarios), codes, self.uids,
                                   self.as_of, settings.volumes.order_window_days)
        self.dialects = {ods: Hl7Dialect(ods, p) for ods, p in self.profiles.items() if p.hl7_version}
        self.feeds = FeedSet(self.out / SCRATCH, settings.sort_buffer_bytes)
        self.dicom = DicomWriterPool(self.out / "dicom", workers)
        self.truth = TruthWriter(self.out / "truth", {ods: t.fhir_system for ods, t in self.trusts.items()})
        self.tally: Tally[str] = Tally()
        self.dicom_written: Tally[str] = Tally()

    # -- shared state across households ------------------------------------------------------------------------------
    def _someone_else(self, rng: random.Random, person_id: str) -> tuple[str, str] | None:
        if not self._recent:
            return None
        other = self._recent[rng.randrange(len(self._recent))]
        return None if other[0] == person_id else other

    def _remember(self, person: Person, listed: bool) -> None:
        if person.nhs_number is None:
            return
        if len(self._recent) == self._recent.maxlen:
            self._listed.pop(self._recent[0][0], None)
        self._recent.append((person.person_id, person.nhs_number))
        self._listed[person.person_id] = listed

    # -- feeds -------------------------------------------------------------------------------------------------------
    def _hl7(self, ods: str, name: str):  # type: ignore[no-untyped-def]
        p = self.profiles[ods]
        return self.feeds.feed(f"hl7/{ods}/{name}.hl7", lambda: Hl7FileWriter(self.out / "hl7" / ods / f"{name}.hl7",
                                                                          p.segment_end, p.mllp))

    def _ndjson(self, ods: str, name: str):  # type: ignore[no-untyped-def]
        return self.feeds.feed(f"fhir/{ods}/{name}.ndjson",
                               lambda: NdjsonWriter(self.out / "fhir" / ods / f"{name}.ndjson"))

    def _bundles(self, ods: str, name: str):  # type: ignore[no-untyped-def]
        s = self.settings
        return self.feeds.feed(f"fhir/{ods}/{name}-NNNN.json", lambda: BundleWriter(
            self.out / "fhir" / ods, name, s.bundle_entries, s.batch_bundle_every, ods.lower(), fhir_feeds.instant))

    # -- generation --------------------------------------------------------------------------------------------------
    def run(self, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Generate the whole region; return the manifest."""
        try:
            return self._run(progress)
        except BaseException:
            self.dicom.terminate()
            self.truth.close()
            self.feeds.abandon()
            raise

    def _run(self, progress: Callable[[int], None] | None) -> dict[str, Any]:
        made, household = 0, 0
        while made < self.request.people:
            household += 1
            rng = random.Random(f"regionsynth:{self.request.seed}:{household}")
            people = self.population.household(rng, household, made + 1)[: self.request.people - made]
            kept = {p.person_id for p in people}
            for p in people:
                if p.twin_of and p.twin_of not in kept:
                    p.twin_of = None
            self._household(rng, people)
            made += len(people)
            if progress is not None and household % 500 == 0:
                progress(made)
        self.tally["households"] = household
        return self._finish()

    def _household(self, rng: random.Random, people: list[Person]) -> None:
        records: dict[str, list[SourceRecord]] = {}
        events: list[PatientEvent] = []
        for person in people:
            records[person.person_id] = self.registrar.register(rng, person)
            for record in records[person.person_id]:
                events.extend(self.registrar.events(rng, record))
        for person in people:
            if person.twin_of and person.person_id < person.twin_of:
                events.extend(self.registrar.twin_mislinks(rng, records[person.person_id], records[person.twin_of]))
        for event in events:
            self._patient_event(rng, event)
        for person in people:
            mine = records[person.person_id]
            self._snapshot(mine)
            history = self.studies.history(rng, person, mine)
            order = None
            if rng.random() < self.settings.volumes.orders_per_person:
                order = self.orders.order(rng, person, mine, history)
            for study in history:
                self._study(rng, study)
            if order is not None:
                self._order(rng, order)
            self._truth(person, mine)

    def _truth(self, person: Person, records: list[SourceRecord]) -> None:
        feeds = {ods: ("hl7" if self.profiles[ods].hl7_version else "fhir") for ods in self.trusts}
        listed = self.truth.person(person, records, feeds)
        self.tally["people"] += 1
        for record in records:
            for r in [record, *record.duplicates]:
                self.tally["records"] += 1
                self.tally["duplicate records"] += r.kind == "duplicate"
                for error in r.recorded.errors:
                    self.tally[f"error {error}"] += 1
                owner = r.recorded.nhs_owner
                if r.recorded.nhs_error == "other-person" and owner and not self._listed.get(owner, True):
                    self.truth.nhs_number_of(owner, r.recorded.nhs_number or "")
                    self._listed[owner] = True
        self._remember(person, listed)

    def _patient_event(self, rng: random.Random, event: PatientEvent) -> None:
        ods = event.record.trust
        trust = self.trusts[ods]
        other_id = event.other.person.person_id if event.other else event.record.person.person_id
        if event.kind in _MERGE_EVENTS:
            code = _MERGE_EVENTS[event.kind] if ods in self.dialects else "fhir-replaced-by"
            self.truth.merge(code, ods, event.when, event.record.person.person_id, event.number,
                             event.other_number or "", other_id)
        if ods in self.dialects:
            self._hl7(ods, "adt").add(event.when, self.dialects[ods].adt(event))
            self.tally[f"adt {event.kind}"] += 1
            return
        # every record of a person at a trust travels by one channel, so that a merge never overtakes a registration
        primary_number = event.record.duplicate_of or event.record.previous_number or event.record.hospital_number
        share = self.profiles[ods].fhir_ndjson_share
        channel = "ndjson" if zlib.crc32(primary_number.encode()) % 1000 < share * 1000 else "patients"
        items: list[tuple[dict, str]] = []
        if event.kind == "merge" and event.other is not None and event.other_state is not None:
            survivor = fhir_feeds.patient(trust, event.number, event.state,
                                          link=("replaces", event.other_number or ""))
            retired = fhir_feeds.patient(trust, event.other_number or "", event.other_state, active=False,
                                         link=("replaced-by", event.number))
            items = [(survivor, event.number), (retired, event.other_number or "")]
        elif event.kind in ("baseline", "register", "update"):
            items = [(fhir_feeds.patient(trust, event.number, event.state), event.number)]
        for resource, number in items:
            if channel == "ndjson":
                self._ndjson(ods, "patients").add(event.when, fhir_feeds.dumps(resource))
            else:
                full_url = uuid.UUID(int=rng.getrandbits(128), version=4)
                self._bundles(ods, "patients").add(event.when, fhir_feeds.patient_entry(resource, full_url),
                                                   group=f"{trust.fhir_system}|{number}")
            self.tally["fhir patients"] += 1

    def _snapshot(self, records: list[SourceRecord]) -> None:
        """Current records at trusts that also offer their patients as FHIR NDJSON."""
        moment = datetime.combine(self.as_of, time(23, 59, 59))
        for record in records:
            if self.profiles[record.trust].fhir_patients != "snapshot":
                continue
            trust = self.trusts[record.trust]
            for r in [record, *record.duplicates]:
                if r.merged_on is None:
                    resource = fhir_feeds.patient(trust, r.hospital_number, r.state_on(moment))
                    self._ndjson(r.trust, "patients-snapshot").add(moment, fhir_feeds.dumps(resource))
                    self.tally["fhir patients snapshot"] += 1

    def _study(self, rng: random.Random, study: Study) -> None:
        ods = study.trust
        trust = self.trusts[ods]
        state = study.record.state_on(study.performed)
        self.tally[f"studies {study.feed}"] += 1
        self.tally["studies"] += 1
        self.tally["studies re-sent"] += study.resent
        if study.feed == "dicom":
            job = plan(study, state, trust, self.profiles[ods], self.uids.next,
                       rng.random() < self.settings.volumes.other_patient_ids_share)
            files = job.files()
            self.dicom.submit(job)
            self.truth.dicom_files(study, files)
            self.tally["dicom files"] += len(files)
            self.dicom_written[f"dicom studies {ods}"] += 1
            self.dicom_written[f"dicom files {ods}"] += len(files)
        else:
            end = datetime.combine(self.as_of, time(23, 59, 59))
            reported = min(study.performed + timedelta(minutes=rng.randrange(30, 60 * 72)), end)
            sends = [reported]
            if study.resent:
                sends.append(min(reported + timedelta(hours=rng.randrange(1, 120)), end))
            for moment in sends:
                if study.feed == "oru":
                    message = self.dialects[ods].oru(moment, study.patient_id, state, study.uid, study.accession,
                                                     f"P{study.accession}", study.procedure, study.description,
                                                     study.performed)
                    self._hl7(ods, "oru").add(moment, message)
                else:
                    series = [(s.uid, s.number, s.description, s.laterality) for s in study.series]
                    resource = fhir_feeds.imaging_study(
                        trust, uid=study.uid, accession=study.accession, patient_id=study.patient_id,
                        patient_name=f"{state.given} {state.family}", procedure=study.procedure,
                        description=study.description, performed=study.performed, series=series)
                    self._ndjson(ods, "imagingstudies").add(moment, fhir_feeds.dumps(resource))
        self.truth.study(study)

    def _order(self, rng: random.Random, order: Order) -> None:
        ods = order.trust
        state = order.record.state_on(order.ordered)
        self.tally["orders"] += 1
        self.tally[f"orders {order.scenario}"] += 1
        if self.profiles[ods].order_feed == "hl7":
            message = self.dialects[ods].order(order.ordered, order.patient_id, state, order.placer, order.procedure,
                                               order.description, order.priority, order.reason, order.planned_uid,
                                               order.accession)
            self._hl7(ods, "orders").add(order.ordered, message)
            feed = "hl7"
        else:
            trust = self.trusts[ods]
            resource = fhir_feeds.service_request(
                trust, placer=order.placer, patient_id=order.patient_id,
                patient_name=f"{state.given} {state.family}", procedure=order.procedure,
                description=order.description, ordered=order.ordered, priority=order.priority, reason=order.reason)
            entry = fhir_feeds.entry(resource, uuid.UUID(int=rng.getrandbits(128), version=4), "POST",
                                     "ServiceRequest")
            self._bundles(ods, "servicerequests").add(order.ordered, entry)
            feed = "fhir"
        self.truth.order(order, feed)

    # -- finishing ---------------------------------------------------------------------------------------------------
    def _finish(self) -> dict[str, Any]:
        self.dicom.close()
        feed_counts = self.feeds.close()
        self.truth.close()
        files = []
        for folder in ("hl7", "fhir", "truth"):  # DICOM files are listed in truth/dicom_files.csv, not here
            for path in sorted((self.out / folder).rglob("*")):
                relative = path.relative_to(self.out).as_posix()
                if path.is_file() and relative != "truth/manifest.json":
                    files.append({"path": relative, "bytes": path.stat().st_size})
        dicom = {ods: {"studies": self.dicom_written[f"dicom studies {ods}"],
                       "files": self.dicom_written[f"dicom files {ods}"]}
                 for ods in self.trusts if self.dicom_written[f"dicom studies {ods}"]}
        manifest = {
            "generator": "regionsynth",
            "format_version": FORMAT_VERSION,
            "seed": self.request.seed,
            "as_of": self.as_of.isoformat(),
            "years": self.request.years,
            "history_start": self.history_start.isoformat(),
            "people": self.request.people,
            "trusts": {ods: {"fhir_system": t.fhir_system, "dicom_issuer": t.dicom_issuer}
                       for ods, t in self.trusts.items()},
            "settings": self.settings.model_dump(mode="json"),
            "counts": dict(sorted(self.tally.items())),
            "feeds": feed_counts,
            "truth_rows": dict(self.truth.rows),
            "files": files,
            "dicom": dicom,
            "conventions": {
                "nhs_number_status_z_segment": "ZPI|1|<status code>^<display>^NHSNSTATUS",
                "oru_study_uid": "ZDS|<uid>^PACS^Application^DICOM or OBX|n|ST|110180^Study Instance UID^DCM||<uid>",
                "procedure_code_system_fhir": NICIP_SYSTEM,
            },
        }
        self.truth.manifest(manifest)
        return manifest


def generate_region(request: RegionRequest, trusts: TrustRegistry, settings: SynthSettings | None = None,
                    progress: Callable[[int], None] | None = None, workers: int | None = None) -> dict[str, Any]:
    """Write a synthetic region to ``request.out`` and return its manifest.

    Parameters
    ----------
    request
        Output folder, number of people, seed, as-of date and years of history.
    trusts
        The consortium's trusts (``priorscan.trusts.load_trusts``).
    settings
        Error rates, volumes and feed dialects; the documented defaults when None.
    progress
        Called now and then with the number of people written so far.
    workers
        Processes that encode and write DICOM files alongside the generator (0: none, the generator writes them;
        default: one when there is more than one CPU). The output does not depend on it.

    Returns
    -------
    dict
        The manifest also written to ``truth/manifest.json``.

    Raises
    ------
    priorscan.errors.InputError
        When the output folder holds something other than an earlier region, or the size is out of range.
    """
    _prepare(request.out)
    if workers is None:
        workers = 1 if (os.cpu_count() or 1) > 1 else 0
    return RegionWriter(request, trusts, settings or SynthSettings(), workers).run(progress)
