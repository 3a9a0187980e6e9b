"""Evaluation against ground truth: pairwise precision, recall and F1, cluster-level rates, review queue, blocking.

Ground truth is ``persons.csv`` (``person_id,system,value``): every source identifier with the true person it belongs
to. Pairwise figures count pairs of source records: a *true pair* is two records of one person, a *predicted pair*
two records of one regional patient. At cluster level, a person is *wrongly merged* when a regional patient holding
their records also holds another person's, and has a *missed link* when their records are spread over more than one
regional patient. *Blocking recall* is the share of true pairs that share at least one usable blocking key.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mpi.blocking import MAX_BLOCK_SIZE, key_table
from mpi.tables import ReviewItem, SourceRecord
from priorscan.errors import InputError
from priorscan.trusts import NHS_NUMBER_SYSTEM, TrustRegistry


@dataclass
class Evaluation:
    """Linkage quality figures."""

    records: int
    people: int
    true_pairs: int
    predicted_pairs: int
    true_positive_pairs: int
    precision: float
    recall: float
    f1: float
    people_wrongly_merged: int
    false_merge_rate: float  # share of people wrongly merged
    people_with_missed_links: int
    missed_link_rate: float  # share of people with two or more records whose records are split
    review_queue: int
    review_queue_rate: float  # open review items per record
    blocking_recall: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pairs(counts: pd.Series) -> int:
    values = counts.to_numpy(dtype=np.int64)
    return int((values * (values - 1) // 2).sum())


def pairwise_metrics(person: Iterable[Any], predicted: Iterable[Any]) -> dict[str, float | int]:
    """Pairwise and cluster-level figures for records labelled with their true ``person`` and ``predicted`` id."""
    table = pd.DataFrame({"person": list(person), "predicted": list(predicted)})
    true_pairs = _pairs(table.groupby("person").size())
    predicted_pairs = _pairs(table.groupby("predicted").size())
    both = _pairs(table.groupby(["person", "predicted"]).size())
    precision = both / predicted_pairs if predicted_pairs else 1.0
    recall = both / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    people_per_patient = table.groupby("predicted")["person"].nunique()
    mixed = set(people_per_patient[people_per_patient > 1].index)
    merged_people = table[table["predicted"].isin(mixed)]["person"].nunique()
    patients_per_person = table.groupby("person")["predicted"].nunique()
    records_per_person = table.groupby("person").size()
    linkable = int((records_per_person > 1).sum())
    split = int((patients_per_person > 1).sum())
    people = int(table["person"].nunique())
    return {"records": len(table), "people": people, "true_pairs": true_pairs, "predicted_pairs": predicted_pairs,
            "true_positive_pairs": both, "precision": precision, "recall": recall, "f1": f1,
            "people_wrongly_merged": int(merged_people), "false_merge_rate": merged_people / people if people else 0.0,
            "people_with_missed_links": split, "missed_link_rate": split / linkable if linkable else 0.0}


def blocking_recall(table: pd.DataFrame, person: np.ndarray, *, max_block_size: int = MAX_BLOCK_SIZE) -> float | None:
    """Share of true pairs (same ``person``) sharing at least one key used for blocking (over-common keys skipped)."""
    keys = key_table(table)
    sizes = keys.groupby("key")["row"].transform("size")
    keys = keys[sizes <= max_block_size]
    true_pairs = _pairs(pd.Series(person).value_counts())
    if not true_pairs:
        return None
    keys = keys.assign(person=person[keys["row"].to_numpy()])
    from mpi.blocking import pairs_from_keys

    left, right = pairs_from_keys(keys[["key", "row"]], max_block_size=max_block_size)
    found = int((person[left] == person[right]).sum())
    return found / true_pairs


def read_truth(path: Path, trusts: TrustRegistry) -> dict[tuple[str, str], str]:
    """``(namespace, local_id) → person_id`` from ``persons.csv`` (NHS-number rows are not source records)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"person_id", "system", "value"} <= set(reader.fieldnames):
                raise InputError("truth file needs the columns person_id,system,value")
            truth = {}
            for row in reader:
                if row["system"] == NHS_NUMBER_SYSTEM:
                    continue
                truth[(trusts.namespace(row["system"]), row["value"].strip())] = row["person_id"]
            return truth
    except OSError as exc:
        raise InputError("cannot read the truth file") from exc


def evaluate_store(session: Session, truth: Mapping[tuple[str, str], str], *,
                   with_blocking: bool = True) -> Evaluation:
    """Evaluate the store's current links against ``truth`` (records absent from truth are left out)."""
    from mpi.batch import load_table

    table = load_table(session)
    keys = session.execute(select(SourceRecord.id, SourceRecord.namespace, SourceRecord.local_id)
                           .where(SourceRecord.active.is_(True))).all()
    person_of = {rid: truth.get((ns, local)) for rid, ns, local in keys}
    persons = table["record_id"].map(person_of)
    known = persons.notna().to_numpy()
    table = table[known].reset_index(drop=True)
    person = persons[known].to_numpy()
    metrics = pairwise_metrics(person, table["regional_patient_id"].to_numpy())
    review = session.scalar(select(func.count()).select_from(ReviewItem).where(ReviewItem.status == "open")) or 0
    records = int(metrics["records"])
    return Evaluation(**metrics, review_queue=int(review),  # type: ignore[arg-type]
                      review_queue_rate=review / records if records else 0.0,
                      blocking_recall=blocking_recall(table, person) if with_blocking else None)
