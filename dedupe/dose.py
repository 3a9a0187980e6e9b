"""The dose avoided when a request is cancelled after an alert: arithmetic over the priors shown, no storage.

The dose avoided is the effective dose the cancelled exam would have given. We take the effective dose recorded for
the comparable prior that fired the alert (the first prior shown, performed the same way), and when it is unknown the
rule file's typical adult dose for the requested procedure (modality and region, else modality alone). Both are
estimates (a population index, not a patient dose), and the basis is recorded with the figure. The typical doses are
an adult's: for a child (the alert's request says ``paediatric``) only the prior's own estimate, which is made with
paediatric coefficients or not at all (:mod:`imaging.dose`), is used; otherwise the dose avoided is not estimated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dedupe.rules import ANY, RuleSet, TypicalDose
from dedupe.vocabulary import region_group


@dataclass(frozen=True)
class DoseAvoided:
    effective_dose_msv: float | None
    basis: str | None


def typical_dose(rules: RuleSet, modality: str | None, body_region: str | None) -> TypicalDose | None:
    """The first typical-dose row for ``modality`` naming ``body_region``, its group, or any region."""
    if not modality:
        return None
    group = region_group(body_region)
    for row in rules.typical_doses:
        if modality.upper() not in row.modalities:
            continue
        if ANY in row.regions or (body_region and (body_region in row.regions or group in row.regions)):
            return row
    return None


def dose_avoided(rules: RuleSet, request: Mapping[str, Any], priors: Sequence[Mapping[str, Any]]) -> DoseAvoided:
    """The dose avoided by cancelling ``request`` (as stored on the alert) after ``priors`` (as shown) were shown.

    Parameters
    ----------
    rules
        The rule set (its typical doses).
    request
        The alert's request: ``modality`` and ``bodySite`` (the normalised region), ``paediatric`` (under 16).
    priors
        The priors shown, first the one that fired, each with ``effectiveDoseMsv`` and ``studyInstanceUid``.
    """
    for prior in priors[:1]:
        dose = prior.get("effectiveDoseMsv")
        if isinstance(dose, int | float) and dose >= 0:
            return DoseAvoided(round(float(dose), 4), f"prior {prior.get('studyInstanceUid') or 'order'}")
    if request.get("paediatric"):
        return DoseAvoided(None, "not estimated: the typical doses are an adult's, and the patient is a child")
    row = typical_dose(rules, request.get("modality"), request.get("bodySite"))
    if row is None:
        return DoseAvoided(None, None)
    return DoseAvoided(row.effective_dose_msv, f"typical ({row.basis})" if row.basis else "typical")
