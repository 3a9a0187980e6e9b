"""Manual and HL7 identity operations: merge (A40), unmerge, link (A24), unlink (A37), change of identifier
(A47), manual relink and review decisions. Each records a manual decision that sticks through every relink, and
moves the record's studies with it (studies follow the source record's regional patient).

They read records as the session's entities and write nothing through them: every row (records moved, link events,
identifiers, manual decisions, review items, regional patients) is a Core statement through the store writer, by
:meth:`~mpi.link_on_write.LinkOnWrite.move` and its kin, and the entities written are expired, so that the next
read of one sees the row as written."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select

from mpi.engine import MATCH, NO_MATCH
from mpi.golden import GoldenRecords
from mpi.index_store import IndexStore
from mpi.link_on_write import LinkOnWrite, LinkOutcome
from mpi.placement import nhs_numbers_disagree
from mpi.records import Demographics, RecordKey, pair_key
from mpi.tables import LinkEvent, RegionalPatient, ReviewItem, SourceRecord
from priorscan.db import utcnow
from priorscan.errors import IdentityError, LinkConflictError, NotFoundError

_VALID_NHS_NUMBERS_SQL = select(SourceRecord.regional_patient_id, SourceRecord.nhs_number).where(
    SourceRecord.regional_patient_id.in_(bindparam("rids", expanding=True)), SourceRecord.active.is_(True),
    SourceRecord.nhs_number_valid.is_(True)).distinct()


class IdentityOperations:
    """Operations a person or a PAS asks for; decisions made here stick.

    Two regional patients with different valid NHS numbers become one only by a person's decision
    (``by_person``: the review queue, ``/api/v1/mpi/link``): a merge or link a feed asks for (A40, A24, A47) is
    refused with :class:`~priorscan.errors.LinkConflictError`, and nothing of it is applied.

    Parts: ``store`` (look-ups), ``golden`` (golden records), ``linker`` (link-on-write: an unknown record named by
    an operation is registered through it, and records move with its :meth:`~LinkOnWrite.move`), whose writer
    writes the rest.
    """

    def __init__(self, store: IndexStore, golden: GoldenRecords, linker: LinkOnWrite) -> None:
        self.store = store
        self.golden = golden
        self.linker = linker
        self.writer = linker.writer
        self.session = store.session

    def _refuse_nhs_conflict(self, first: str | None, second: str | None, *, by_person: bool, event: str) -> None:
        """Refuse to make one patient of ``first`` and ``second`` when their valid NHS numbers disagree, unless a
        person decided it."""
        if by_person or not first or not second or first == second:
            return
        numbers: dict[str, set[str]] = {first: set(), second: set()}
        for regional_id, number in self.session.execute(_VALID_NHS_NUMBERS_SQL, {"rids": [first, second]}):
            numbers[regional_id].add(number)
        if nhs_numbers_disagree(numbers[first], numbers[second]):
            raise LinkConflictError(f"{event}: the two patients have different valid NHS numbers; only a person's "
                                    "decision (the MPI review) can make them one")

    def _record_decision(self, a: SourceRecord, b: SourceRecord, decision: str, actor: str, reason: str) -> None:
        lo, hi = pair_key(a.id, b.id)
        self.writer.record_decision(lo, hi, {"decision": decision, "actor": actor, "reason": reason,
                                             "at": utcnow()})

    def _ensure(self, key: RecordKey, *, actor: str, event: str) -> SourceRecord:
        self.linker.settle_pending()
        record = self.store.get_record(key)
        if record is None:
            self.linker.upsert(Demographics(namespace=key.namespace, local_id=key.local_id), event=event, actor=actor)
            record = self.store.require_record(key)
        return record

    def _absorb(self, source_regional: str | None, target_regional: str, *, actor: str, reason: str,
                manual: bool) -> None:
        """Move every record of ``source_regional`` into ``target_regional`` and retire the emptied patient."""
        if not source_regional or source_regional == target_regional:
            return
        for member in self.store.records_of(source_regional):
            self.linker.move(member, target_regional, state=MATCH, score=member.link_score, weights=member.link_weights,
                             actor=actor, reason=reason, manual=manual or member.link_manual)
        self.writer.update_patient(source_regional, {"status": "retired", "merged_into_id": target_regional})

    def merge(self, survivor: RecordKey, retired: RecordKey, *, actor: str, event: str = "ADT^A40",
              survivor_demographics: Demographics | None = None, by_person: bool = False) -> LinkOutcome:
        """ADT A40: the ``retired`` record is merged into ``survivor``; both patients become one.

        A merge naming an unknown record still takes effect: the unknown side is created (inactive when retired),
        so later messages about it resolve to the survivor. Refused (:class:`LinkConflictError`) when the two
        patients have different valid NHS numbers and ``by_person`` is false.
        """
        if survivor_demographics is not None:
            self.linker.upsert(survivor_demographics, event=event, actor=actor)
        keep = self._ensure(survivor, actor=actor, event=event)
        gone = self._ensure(retired, actor=actor, event=event)
        if keep.id == gone.id:
            return self.linker.outcome(keep)
        self._refuse_nhs_conflict(keep.regional_patient_id, gone.regional_patient_id, by_person=by_person,
                                  event=event)
        target = keep.regional_patient_id or self._own_patient(keep.id)
        self._record_decision(keep, gone, MATCH, actor, event)
        old_regional = gone.regional_patient_id
        self.linker.move(gone, target, state=MATCH, score=None, weights=None, actor=actor,
                         reason=f"{event} merge", manual=True, also={"active": False, "merged_into_id": keep.id})
        self._absorb(old_regional, target, actor=actor, reason=f"{event} merge", manual=False)
        self.linker.drop_blocking_keys(gone.id)  # a merged-away record is no candidate any more
        self.golden.refresh(target)
        return self.linker.outcome(keep)

    def _own_patient(self, record_id: int) -> str:
        """A new regional patient for a record that has none (written unlinked by a bulk load, not yet placed)."""
        regional_id = self.linker.new_patient()
        self.writer.update_record(record_id, {"regional_patient_id": regional_id})
        return regional_id

    def unmerge(self, survivor: RecordKey, retired: RecordKey, *, actor: str) -> LinkOutcome:
        """Undo a merge: the retired record is active again, and the person it named gets back what the merge took.

        - The record returns to the regional patient the merge retired (its id, which trusts and orders may hold,
          comes back into use), or to a new one when that patient is gone or was not retired by this merge.
        - Every record the merge brought over from that patient goes back with it, unless a decision moved it since.
        - Every record placed automatically since the merge beside the survivor, or sent to review against either
          side, is placed again by link-on-write, so a record that joined through the retired record's details
          follows them.
        - The survivor and the record are not the same person from now on (a manual decision, sticky through
          relinks).
        """
        self.linker.settle_pending()
        keep = self.store.require_record(survivor)
        gone = self.store.require_record(retired)
        merged_at, restored = self._merge_undone(gone, keep.regional_patient_id)
        self.writer.update_record(gone.id, {"active": True, "merged_into_id": None})
        self._record_decision(keep, gone, NO_MATCH, actor, "unmerge")
        target = restored if restored is not None else self.linker.new_patient()
        brought = self._brought_by_merge(restored, keep.regional_patient_id, merged_at) \
            if restored is not None and keep.regional_patient_id else []
        self.linker.move(gone, target, state=NO_MATCH, score=None, weights=None, actor=actor, reason="unmerge",
                         manual=True)
        for member in brought:
            self.linker.move(member, target, state=member.link_state or MATCH, score=member.link_score,
                             weights=member.link_weights, actor=actor, reason="unmerge", manual=member.link_manual)
        self.linker.refresh_blocking_keys(gone)
        for record_id in self._placed_since(merged_at, keep, {gone.id, *(m.id for m in brought)}):
            self.linker.place_again(record_id, actor=actor, reason="unmerge: placed again")
        if keep.regional_patient_id:
            self.golden.refresh(keep.regional_patient_id)
        self.golden.refresh(target)
        return self.linker.outcome(gone)

    def _merge_undone(self, gone: SourceRecord, survivor_regional: str | None
                      ) -> tuple[datetime | None, str | None]:
        """When ``gone`` was merged into ``survivor_regional``, and the patient it left (made active again) if that
        merge retired it into the survivor's (and nothing revived it since)."""
        event = self.session.scalars(select(LinkEvent).where(
            LinkEvent.source_record_id == gone.id, LinkEvent.to_regional_id == survivor_regional,
            LinkEvent.manual.is_(True), LinkEvent.reason.like("% merge")).order_by(LinkEvent.id.desc())).first()
        if event is None or not event.from_regional_id:
            return None, None
        patient = self.session.get(RegionalPatient, event.from_regional_id)
        if patient is None or patient.status != "retired" or patient.merged_into_id != survivor_regional:
            return event.at, None
        self.writer.update_patient(patient.id, {"status": "active", "merged_into_id": None})
        return event.at, event.from_regional_id

    def _brought_by_merge(self, old_regional: str, survivor_regional: str,
                          merged_at: datetime | None) -> list[SourceRecord]:
        """The records a merge moved from ``old_regional`` into ``survivor_regional`` that are still there and were
        not moved since."""
        moved = set(self.session.scalars(select(LinkEvent.source_record_id).where(
            LinkEvent.from_regional_id == old_regional, LinkEvent.to_regional_id == survivor_regional,
            LinkEvent.reason.like("% merge"), *([LinkEvent.at >= merged_at] if merged_at else []))))
        brought = []
        for member in self.store.records_of(survivor_regional):
            last = self.session.scalars(select(LinkEvent).where(LinkEvent.source_record_id == member.id)
                                        .order_by(LinkEvent.id.desc())).first()
            if member.id in moved and last is not None and last.from_regional_id == old_regional:
                brought.append(member)
        return brought

    def _placed_since(self, merged_at: datetime | None, keep: SourceRecord, moved: set[int]) -> list[int]:
        """Active records whose automatic placement since the merge may have rested on the merged patient: those
        linked automatically to the survivor's patient, and those sent to review against a record of either side."""
        if merged_at is None or not keep.regional_patient_id:
            return []
        sides = {keep.id, *moved, *self.store.source_record_ids_of(keep.regional_patient_id)}
        linked = set(self.session.scalars(select(LinkEvent.source_record_id).where(
            LinkEvent.to_regional_id == keep.regional_patient_id, LinkEvent.manual.is_(False),
            LinkEvent.at >= merged_at)))
        reviewed = set(self.session.scalars(select(ReviewItem.source_record_id).where(
            ReviewItem.status == "open", ReviewItem.candidate_record_id.in_(sides))))
        chosen = (linked | reviewed) - moved - {keep.id}
        records = [self.session.get(SourceRecord, rid) for rid in sorted(chosen)]
        return [r.id for r in records if r is not None and r.active and not r.link_manual]

    def link(self, a: RecordKey, b: RecordKey, *, actor: str, event: str = "ADT^A24",
             by_person: bool = False) -> LinkOutcome:
        """ADT A24 / manual link: ``a`` and ``b`` are the same person; their regional patients become one.

        Refused (:class:`LinkConflictError`) when the two patients have different valid NHS numbers and
        ``by_person`` is false."""
        first = self._ensure(a, actor=actor, event=event)
        second = self._ensure(b, actor=actor, event=event)
        self._refuse_nhs_conflict(first.regional_patient_id, second.regional_patient_id, by_person=by_person,
                                  event=event)
        self._record_decision(first, second, MATCH, actor, event)
        target = first.regional_patient_id or self._own_patient(first.id)
        old = second.regional_patient_id
        self.linker.move(second, target, state=MATCH, score=None, weights=None, actor=actor, reason=event, manual=True)
        self.writer.update_record(first.id, {"link_manual": True})
        self._absorb(old, target, actor=actor, reason=event, manual=False)
        self.golden.refresh(target)
        return self.linker.outcome(second)

    def unlink(self, a: RecordKey, b: RecordKey, *, actor: str, event: str = "ADT^A37") -> LinkOutcome:
        """ADT A37 / manual unlink: ``b`` is not the same person as ``a``; ``b`` gets a patient of its own."""
        self.linker.settle_pending()
        first = self.store.require_record(a)
        second = self.store.require_record(b)
        self._record_decision(first, second, NO_MATCH, actor, event)
        if first.regional_patient_id != second.regional_patient_id:
            return self.linker.outcome(second)
        previous = second.regional_patient_id
        target = self.linker.new_patient()
        self.linker.move(second, target, state=NO_MATCH, score=None, weights=None, actor=actor, reason=event,
                         manual=True)
        if previous:
            self.golden.refresh(previous)
        self.golden.refresh(target)
        return self.linker.outcome(second)

    def change_identifier(self, old: RecordKey, new: RecordKey, *, actor: str,
                          event: str = "ADT^A47") -> LinkOutcome:
        """ADT A47: the record known as ``old`` is now known as ``new`` (a merge when ``new`` exists already).

        The replaced identifier is kept on the record with use ``old``: shown in its history and FHIR Patient,
        never matched or resolved again (a later message naming it is about a record of its own); the record's
        identifiers (match fields, ``i:`` blocking keys) are its new key and its current further identifiers."""
        self.linker.settle_pending()
        record = self.store.get_record(old)
        if record is None:
            return self.linker.outcome(self._ensure(new, actor=actor, event=event))
        if self.store.get_record(new) is not None:
            return self.merge(new, old, actor=actor, event=event)
        record_id, regional_id = record.id, record.regional_patient_id
        link_state, manual = record.link_state or MATCH, record.link_manual
        self.writer.update_record(record_id, {"local_id": new.local_id, "namespace": new.namespace,
                                              "version": (record.version or 0) + 1})
        self.writer.keep_identifier(record_id, old.namespace, old.local_id, use="old")
        self.writer.drop_identifier(record_id, new.namespace, new.local_id)  # the new one is current, not further
        self.linker.refresh_identifiers(record, new)
        self.writer.insert_link_event({
            "source_record_id": record_id, "from_regional_id": regional_id, "to_regional_id": regional_id,
            "link_state": link_state, "manual": manual, "score": None, "weights": None, "model_version": None,
            "actor": actor, "reason": f"{event} identifier change", "at": utcnow()})
        return self.linker.outcome(record)

    def relink(self, key: RecordKey, regional_id: str, *, actor: str, reason: str = "manual relink",
               by_person: bool = False) -> LinkOutcome:
        """Move a record to ``regional_id``; the decision sticks. Refused (:class:`LinkConflictError`) when the
        record's valid NHS number and the patient's disagree, unless a person decided it (``by_person``)."""
        self.linker.settle_pending()
        record = self.store.require_record(key)
        target = self.store.regional_patient(regional_id)
        if target is None:
            raise NotFoundError("no such regional patient")
        if not by_person and record.nhs_number_valid and record.nhs_number:
            others = {n for (_, n) in self.session.execute(_VALID_NHS_NUMBERS_SQL, {"rids": [target.id]})}
            if nhs_numbers_disagree({record.nhs_number}, others):
                raise LinkConflictError(f"{reason}: the record and the patient have different valid NHS numbers; "
                                        "only a person's decision (the MPI review) can make them one")
        previous = record.regional_patient_id
        for member in self.store.records_of(target.id, include_inactive=False):
            self._record_decision(record, member, MATCH, actor, reason)
        self.linker.move(record, target.id, state=MATCH, score=None, weights=None, actor=actor, reason=reason,
                         manual=True)
        if previous and previous != target.id:
            self.golden.refresh(previous)
        self.golden.refresh(target.id)
        return self.linker.outcome(record)

    def resolve_review(self, item_id: int, decision: str, *, actor: str) -> LinkOutcome:
        """Settle a review item: ``match`` joins the candidate's patient, ``no-match`` keeps them apart for good."""
        self.linker.settle_pending()
        item = self.session.get(ReviewItem, item_id)
        if item is None or item.status != "open":
            raise NotFoundError("no open review item with that id")
        record = self.session.get(SourceRecord, item.source_record_id)
        candidate = self.session.get(SourceRecord, item.candidate_record_id)
        assert record is not None and candidate is not None
        if decision not in (MATCH, NO_MATCH):
            raise IdentityError("a review decision is match or no-match")
        self.writer.settle_review(item_id, {"status": "resolved", "resolution": decision, "resolved_by": actor,
                                            "resolved_at": utcnow()})
        if decision == MATCH:  # a person's decision: the one way two NHS numbers become one patient
            return self.link(RecordKey(candidate.namespace, candidate.local_id),
                             RecordKey(record.namespace, record.local_id), actor=actor, event="review",
                             by_person=True)
        self._record_decision(record, candidate, NO_MATCH, actor, "review")
        self.writer.update_record(record.id, {"link_state": NO_MATCH, "link_manual": True})
        return self.linker.outcome(record)


__all__ = ["IdentityOperations"]
