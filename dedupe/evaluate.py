"""Recall and precision of the duplicate check against a synthetic region's ground truth (``truth/repeats.csv``).

After ``priorscan ingest`` of a region written by ``priorscan synth``, every order of the region has been checked
(HL7 ORM/OMI and FHIR ServiceRequest, each as of its own time). An order is *flagged* when it has an alert (warning
or info); it is a *true repeat* when the ground truth expects warning or info. Each missed repeat is put down to a
cause, so that a miss of the matching engine or of a feed is not mistaken for one of the rule engine:

``identity``         the order's patient is not the regional patient of the prior (or is unknown)
``prior``            the prior study is not in the index
``not-comparable``   the imaging vocabulary does not compare the two procedures (a disagreement with the truth)
``rules``            everything above was right and the check still said clear
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from dedupe.comparable import Procedure, matched_regions
from dedupe.rules import RuleSet, load_rules
from dedupe.tables import Alert
from dedupe.vocabulary import laterality_compatible, split_regions
from imaging import ImagingOrder, Study
from mpi import SourceRecord


@dataclass
class RepeatFigures:
    orders: int = 0
    true_repeats: int = 0
    flagged: int = 0
    true_positives: int = 0
    tier_agreement: int = 0
    misses: Counter[str] = field(default_factory=Counter)
    tiers: Counter[tuple[str, str]] = field(default_factory=Counter)  # (expected, got)

    @property
    def recall(self) -> float:
        return self.true_positives / self.true_repeats if self.true_repeats else 1.0

    @property
    def precision(self) -> float:
        return self.true_positives / self.flagged if self.flagged else 1.0

    @property
    def recall_given_identity(self) -> float:
        """Recall among the true repeats whose patient, prior and comparability were right (the rule engine's)."""
        judged = self.true_positives + self.misses["rules"]
        return self.true_positives / judged if judged else 1.0

    def as_dict(self) -> dict[str, object]:
        return {"orders": self.orders, "trueRepeats": self.true_repeats, "flagged": self.flagged,
                "truePositives": self.true_positives, "recall": round(self.recall, 4),
                "precision": round(self.precision, 4), "recallGivenIdentity": round(self.recall_given_identity, 4),
                "tierAgreement": self.tier_agreement, "misses": dict(self.misses),
                "tiers": {f"{e}->{g}": n for (e, g), n in sorted(self.tiers.items())}}


def _regional_of_order(session: Session, trust: str, placer: str) -> str | None:
    return session.scalar(select(SourceRecord.regional_patient_id)
                          .join(ImagingOrder, ImagingOrder.source_record_id == SourceRecord.id)
                          .where(ImagingOrder.requesting_trust == trust, ImagingOrder.placer_order_number == placer))


def _miss_cause(session: Session, row: dict[str, str], rules: RuleSet) -> str:
    prior = session.execute(
        select(Study.modality, Study.body_region, Study.body_regions, Study.laterality,
               SourceRecord.regional_patient_id)
        .outerjoin(SourceRecord, SourceRecord.id == Study.source_record_id)
        .where(Study.study_instance_uid == row["prior_study_uid"])).first()
    if prior is None:
        return "prior"
    order = session.execute(select(ImagingOrder.modality, ImagingOrder.body_region, ImagingOrder.body_regions,
                                   ImagingOrder.laterality)
                            .where(ImagingOrder.requesting_trust == row["trust"],
                                   ImagingOrder.placer_order_number == row["placer_order_number"])).first()
    regional = _regional_of_order(session, row["trust"], row["placer_order_number"])
    if regional is None or regional != prior.regional_patient_id:
        return "identity"
    if order is None or not matched_regions(
            rules, Procedure(order.modality, order.body_region, regions=split_regions(order.body_regions)),
            Procedure(prior.modality, prior.body_region, regions=split_regions(prior.body_regions))) \
            or not laterality_compatible(order.laterality, prior.laterality):
        return "not-comparable"  # as the check compares: overlap, coverage, every region named
    return "rules"


def evaluate_repeats(session: Session, repeats_csv: Path, rules: RuleSet | None = None) -> RepeatFigures:
    """Compare the alerts in the store with the ground truth of ``repeats_csv`` (misses put down to a cause with
    ``rules``, the packaged table when None)."""
    rules = rules if rules is not None else load_rules()
    verdicts = {(a.requesting_trust, a.placer_order_number): a.verdict
                for a in session.execute(select(Alert.requesting_trust, Alert.placer_order_number, Alert.verdict))}
    figures = RepeatFigures()
    with Path(repeats_csv).open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            figures.orders += 1
            expected = row["expected_tier"] or "clear"
            got = verdicts.get((row["trust"], row["placer_order_number"]), "clear")
            figures.tiers[(expected, got)] += 1
            figures.tier_agreement += expected == got
            if expected != "clear":
                figures.true_repeats += 1
            if got != "clear":
                figures.flagged += 1
            if expected != "clear" and got != "clear":
                figures.true_positives += 1
            elif expected != "clear":
                figures.misses[_miss_cause(session, row, rules)] += 1
    return figures
