"""The body-region and laterality vocabulary of the imaging index, shared with the duplicate check (``dedupe``).

Every study and every order is normalised to one ``body_region`` value from :data:`BODY_REGIONS` (or ``None`` when
unknown) and one ``laterality`` value from :data:`LATERALITIES` (or ``None`` when unknown).

Each region belongs to one **group**, named as the rows of the duplicate rule table in REFERENCE.md:

==========================  ===================================================================================
group                       regions
==========================  ===================================================================================
``head``                    ``head`` (brain, skull, pituitary, inner ear)
``face``                    ``face`` (facial bones, sinuses, orbits, mandible, dental, TMJ)
``neck``                    ``neck`` (soft tissue neck, thyroid, larynx, salivary glands)
``chest-abdomen-pelvis``    ``chest``, ``abdomen``, ``pelvis`` and the combinations ``chest-abdomen``,
                            ``abdomen-pelvis``, ``chest-abdomen-pelvis``
``spine``                   ``cervical-spine``, ``thoracic-spine``, ``lumbar-spine`` (with sacrum and coccyx),
                            ``whole-spine``
``limbs``                   ``shoulder``, ``humerus``, ``elbow``, ``forearm``, ``wrist``, ``hand``,
                            ``upper-limb`` (unspecified or several parts), ``hip``, ``femur``, ``knee``,
                            ``lower-leg``, ``ankle``, ``foot``, ``lower-limb``
``angiography``             ``pulmonary-angiography`` (CTPA), ``head-neck-angiography``, ``coronary-angiography``,
                            ``aortic-angiography``, ``peripheral-angiography``, ``angiography`` (unspecified)
``breast``                  ``breast``
``whole-body``              ``whole-body`` (skeletal survey, whole-body PET or bone scan)
==========================  ===================================================================================

Two regions are in the same group when the rule table would compare them (:func:`same_group`). Some rows ask more
than the group: limbs must be the same part, spine the same level, and a projection radiograph of the chest is not
one of the abdomen. :func:`overlaps` says whether two regions image a common part, and :func:`comparable_regions`
combines the two the way the rule table reads (group for cross-sectional trunk imaging, overlap otherwise).

Laterality is ``left``, ``right``, ``both`` or ``none`` (an unpaired part); ``None`` means *not known*, which is not
the same as ``none``. :func:`laterality_compatible` implements "left ≠ right; both matches either".
"""

from __future__ import annotations

from dataclasses import dataclass

HEAD = "head"
FACE = "face"
NECK = "neck"
CHEST_ABDOMEN_PELVIS = "chest-abdomen-pelvis"
SPINE = "spine"
LIMBS = "limbs"
ANGIOGRAPHY = "angiography"
BREAST = "breast"
WHOLE_BODY = "whole-body"

#: The region groups, as named by the duplicate rule table.
REGION_GROUPS: tuple[str, ...] = (HEAD, FACE, NECK, CHEST_ABDOMEN_PELVIS, SPINE, LIMBS, ANGIOGRAPHY, BREAST,
                                  WHOLE_BODY)

LEFT = "left"
RIGHT = "right"
BOTH = "both"
NONE = "none"
#: Laterality values; ``None`` (not in this tuple) means unknown.
LATERALITIES: tuple[str, ...] = (LEFT, RIGHT, BOTH, NONE)

#: Modalities whose trunk imaging covers the whole chest/abdomen/pelvis group (REFERENCE: "and combinations").
CROSS_SECTIONAL_MODALITIES = frozenset({"CT", "MR", "NM", "PT"})


@dataclass(frozen=True)
class Region:
    """One body-region value: its group, the anatomical parts it images and whether it has a side."""

    name: str
    group: str
    parts: frozenset[str]
    paired: bool = False


def _r(name: str, group: str, parts: set[str] | None = None, paired: bool = False) -> Region:
    return Region(name, group, frozenset(parts or {name}), paired)


_UPPER = {"shoulder", "humerus", "elbow", "forearm", "wrist", "hand"}
_LOWER = {"hip", "femur", "knee", "lower-leg", "ankle", "foot"}
_ANGIO = {"pulmonary-vessels", "head-neck-vessels", "coronary-vessels", "aorta", "peripheral-vessels"}

_REGIONS: tuple[Region, ...] = (
    _r("head", HEAD),
    _r("face", FACE),
    _r("neck", NECK),
    _r("chest", CHEST_ABDOMEN_PELVIS),
    _r("abdomen", CHEST_ABDOMEN_PELVIS),
    _r("pelvis", CHEST_ABDOMEN_PELVIS),
    _r("chest-abdomen", CHEST_ABDOMEN_PELVIS, {"chest", "abdomen"}),
    _r("abdomen-pelvis", CHEST_ABDOMEN_PELVIS, {"abdomen", "pelvis"}),
    _r("chest-abdomen-pelvis", CHEST_ABDOMEN_PELVIS, {"chest", "abdomen", "pelvis"}),
    _r("cervical-spine", SPINE),
    _r("thoracic-spine", SPINE),
    _r("lumbar-spine", SPINE),
    _r("whole-spine", SPINE, {"cervical-spine", "thoracic-spine", "lumbar-spine"}),
    *(_r(part, LIMBS, paired=True) for part in sorted(_UPPER)),
    _r("upper-limb", LIMBS, _UPPER, paired=True),
    *(_r(part, LIMBS, paired=True) for part in sorted(_LOWER)),
    _r("lower-limb", LIMBS, _LOWER, paired=True),
    _r("pulmonary-angiography", ANGIOGRAPHY, {"pulmonary-vessels"}),
    _r("head-neck-angiography", ANGIOGRAPHY, {"head-neck-vessels"}),
    _r("coronary-angiography", ANGIOGRAPHY, {"coronary-vessels"}),
    _r("aortic-angiography", ANGIOGRAPHY, {"aorta"}),
    _r("peripheral-angiography", ANGIOGRAPHY, {"peripheral-vessels"}, paired=True),
    _r("angiography", ANGIOGRAPHY, _ANGIO),
    _r("breast", BREAST, paired=True),
    _r("whole-body", WHOLE_BODY, {"head", "neck", "chest", "abdomen", "pelvis"}),
)

#: Every body-region value, by name.
REGIONS: dict[str, Region] = {region.name: region for region in _REGIONS}
#: The body-region values, in a stable order.
BODY_REGIONS: tuple[str, ...] = tuple(REGIONS)


def region_group(body_region: str | None) -> str | None:
    """The group of ``body_region``; ``None`` when the region is unknown or not in the vocabulary.

    Parameters
    ----------
    body_region : str or None
        A value of :data:`BODY_REGIONS`.

    Returns
    -------
    str or None
        One of :data:`REGION_GROUPS`.
    """
    region = REGIONS.get(body_region or "")
    return region.group if region else None


def is_paired(body_region: str | None) -> bool:
    """Whether ``body_region`` has a side (limbs, breast), so that laterality must be compared."""
    region = REGIONS.get(body_region or "")
    return bool(region and region.paired)


def same_group(a: str | None, b: str | None) -> bool:
    """Whether two regions fall in the same group of the rule table (never true when either is unknown)."""
    group = region_group(a)
    return group is not None and group == region_group(b)


def overlaps(a: str | None, b: str | None) -> bool:
    """Whether two regions image at least one common part (``chest`` and ``chest-abdomen-pelvis`` do)."""
    ra, rb = REGIONS.get(a or ""), REGIONS.get(b or "")
    if ra is None or rb is None:
        return False
    if ra.group == WHOLE_BODY or rb.group == WHOLE_BODY:
        return bool(ra.parts & rb.parts) or ra.group == rb.group
    return ra.group == rb.group and bool(ra.parts & rb.parts)


def comparable_regions(a: str | None, b: str | None, modality: str | None = None) -> bool:
    """Whether two regions are comparable as the rule table reads, for studies of one ``modality``.

    Cross-sectional imaging (CT, MR, NM, PET) of the chest, abdomen and pelvis compares any combination of the three,
    and head, face, neck, breast and angiography compare within their group. Limbs must share a part and spine a
    level; projection radiographs, ultrasound and the rest of the trunk compare only overlapping regions.

    Parameters
    ----------
    a, b : str or None
        Values of :data:`BODY_REGIONS`.
    modality : str, optional
        The normalised modality (``CT``, ``MR``, ``XR``, ``US`` ...).
    """
    group = region_group(a)
    if group is None or group != region_group(b):
        return False
    if group in (LIMBS, SPINE):
        return overlaps(a, b)
    if group == CHEST_ABDOMEN_PELVIS and (modality or "").upper() not in CROSS_SECTIONAL_MODALITIES:
        return overlaps(a, b)
    return True


def laterality_compatible(a: str | None, b: str | None) -> bool:
    """Left ≠ right; ``both`` matches either; unknown (``None``) cannot rule a match out.

    Parameters
    ----------
    a, b : str or None
        Values of :data:`LATERALITIES`, or ``None`` when unknown.
    """
    if a is None or b is None or a == b:
        return True
    if BOTH in (a, b) or NONE in (a, b):
        return True  # both matches either; a side given for an unpaired part cannot rule a match out
    return False


def normalise_laterality(value: str | None) -> str | None:
    """A laterality value from the words and codes feeds use (``L``, ``Lt``, ``R``, ``B``, SNOMED CT codes ...)."""
    if value is None:
        return None
    key = value.strip().upper().rstrip(".")
    return _LATERALITY_WORDS.get(key)


_LATERALITY_WORDS = {
    "L": LEFT, "LT": LEFT, "LEFT": LEFT, "7771000": LEFT, "G-A101": LEFT,
    "R": RIGHT, "RT": RIGHT, "RIGHT": RIGHT, "24028007": RIGHT, "G-A100": RIGHT,
    "B": BOTH, "BI": BOTH, "BIL": BOTH, "BILAT": BOTH, "BILATERAL": BOTH, "BOTH": BOTH, "51440002": BOTH,
    "G-A102": BOTH, "LR": BOTH, "RL": BOTH,
    "N": NONE, "NONE": NONE, "M": NONE, "MIDLINE": NONE, "8": NONE, "UNPAIRED": NONE, "66459002": NONE,
}
