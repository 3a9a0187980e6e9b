"""The patient index service: link-on-write, identity operations and look-ups over one database session.

:class:`PatientIndex` is what the edges (HL7, FHIR, DICOM, the duplicate check) call. It never commits: the caller
commits the unit of work, so an ACK or a 2xx goes out only after the data is stored. It is put together from
namespaced parts, one module each:

=============================  ==========================================================================
:mod:`mpi.index_store`         the session, look-ups, blocking and scoring a probe against candidates
:mod:`mpi.placement`           the linking rules, pure: where a scored record goes (``place``)
:mod:`mpi.golden`              the golden record of a regional patient
:mod:`mpi.link_on_write`       the write path: ``upsert`` with link-on-write, placed by ``place``
:mod:`mpi.identity_operations` merge, unmerge, link, unlink, change of identifier, relink, review decisions
:mod:`mpi.resolution`          the read side: ``resolve`` for requests and ``match`` for FHIR ``$match``
:mod:`mpi.active_model`        the active matching model, cached per version
=============================  ==========================================================================

Manual decisions (A24 link, A37 unlink, A40 merge, review decisions) stick: automatic relinks respect them.
"""

from __future__ import annotations

from mpi.active_model import MODEL_CHECK_S, active_model, forget_active_model
from mpi.decisions import MATCH
from mpi.identity_operations import IdentityOperations
from mpi.index_store import DEMOGRAPHIC_FIELDS, MAX_CANDIDATES, ClusterScores
from mpi.link_on_write import LinkOutcome, new_regional_id, pair_key
from mpi.records import Demographics
from mpi.resolution import MatchCandidate, Resolution, Resolver
from priorscan import metrics


class PatientIndex(IdentityOperations, Resolver):
    """Identity operations over one session. ``actor`` names who or what acts (a feed, a user, the batch)."""

    def upsert(self, demographics: Demographics, *, event: str, actor: str, source_kind: str = "hl7",
               provisional: bool = False) -> LinkOutcome:
        """:meth:`mpi.link_on_write.LinkOnWrite.upsert`, its outcome counted for the metrics (``new``: the record
        matched nobody and has a regional patient of its own)."""
        outcome = super().upsert(demographics, event=event, actor=actor, source_kind=source_kind,
                                 provisional=provisional)
        if outcome.applied:
            new = outcome.link_state == MATCH and outcome.score is None
            metrics.link_outcome("new" if new else outcome.link_state)
        return outcome


__all__ = [
    "DEMOGRAPHIC_FIELDS", "MAX_CANDIDATES", "MODEL_CHECK_S", "ClusterScores", "LinkOutcome", "MatchCandidate",
    "PatientIndex", "Resolution", "active_model", "forget_active_model", "new_regional_id", "pair_key",
]
