"""The one place the duplicate check meets the imaging index's vocabulary: modalities, regions, region groups,
laterality and the procedure normaliser, so that requests and studies are always compared in the same words.

Nothing here normalises by itself: it re-exports the imaging package's functions and describes its vocabulary for
validating the rule file.
"""

from __future__ import annotations

from dedupe.rules import Vocabulary
from imaging import (
    BODY_REGIONS,
    MODALITIES,
    REGION_GROUPS,
    NormalisedProcedure,
    ProcedureCode,
    body_structure_region,
    body_structure_side,
    canonical_system,
    comparable_regions,
    is_paired,
    join_regions,
    laterality_compatible,
    normalise_description,
    normalise_laterality,
    normalise_modality,
    normalise_procedure,
    region_group,
    region_parts,
    split_regions,
)


def rule_vocabulary() -> Vocabulary:
    """The modalities and regions (values and groups) a rule file may name."""
    return Vocabulary(modalities=frozenset(MODALITIES), regions=frozenset(BODY_REGIONS) | frozenset(REGION_GROUPS))


__all__ = [
    "BODY_REGIONS",
    "MODALITIES",
    "REGION_GROUPS",
    "NormalisedProcedure",
    "ProcedureCode",
    "body_structure_region",
    "body_structure_side",
    "canonical_system",
    "comparable_regions",
    "is_paired",
    "join_regions",
    "laterality_compatible",
    "normalise_description",
    "normalise_laterality",
    "normalise_modality",
    "normalise_procedure",
    "region_group",
    "region_parts",
    "rule_vocabulary",
    "split_regions",
]
