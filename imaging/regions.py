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

Two regions are in the same group when the rule table would compare them (:func:`same_group`). Comparison asks more
than the group: two regions compare when they image a common part (:func:`overlaps`), so limbs must be the same
part, spine the same level, ``chest`` compares with ``chest-abdomen-pelvis`` but not with ``abdomen-pelvis``, and
CT angiography compares within one vascular territory (pulmonary, head and neck, coronary, aorta, peripheral).
:func:`comparable_regions` is that rule, the same for every modality. A ``whole-body`` study images every part it
lists, but which regions it stands in for is a clinical judgement per modality (a trauma pan-scan CT covers a CT
head; a bone scan does not cover a renogram): the rule file states it, and the duplicate check applies it.

Laterality is ``left``, ``right``, ``both`` or ``none`` (an unpaired part); ``None`` means *not known*, which is not
the same as ``none``. :func:`laterality_compatible` implements "left ≠ right; both matches either".
"""

from __future__ import annotations

import re
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


def join_regions(regions: tuple[str, ...] | list[str]) -> str | None:
    """Regions as stored (``body_regions``): space-separated names, the first first; None when there are none."""
    return " ".join(regions)[:200] or None if regions else None


def split_regions(stored: str | None) -> tuple[str, ...]:
    """The regions of a stored ``body_regions`` value (names outside the vocabulary are left out)."""
    return tuple(name for name in (stored or "").split() if name in REGIONS)


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


def region_parts(body_region: str | None) -> tuple[str, ...]:
    """The regions of the vocabulary that ``body_region`` images as parts of itself (``abdomen-pelvis``: the abdomen
    and the pelvis; ``whole-spine``: each level; ``whole-body``: head, neck, chest, abdomen and pelvis), sorted; empty
    for a region that has none (a single part, or an angiographic territory, whose parts are vessels).

    A rule or an exception that names a part applies to a region that images it: an abdomen-pelvis radiograph (KUB)
    images the pelvis, a whole-spine radiograph the lumbar spine.
    """
    region = REGIONS.get(body_region or "")
    if region is None:
        return ()
    return tuple(sorted(part for part in region.parts if part != region.name and part in REGIONS))


def same_group(a: str | None, b: str | None) -> bool:
    """Whether two regions fall in the same group of the rule table (never true when either is unknown)."""
    group = region_group(a)
    return group is not None and group == region_group(b)


def overlaps(a: str | None, b: str | None) -> bool:
    """Whether two regions of one group image at least one common part.

    ``chest`` and ``chest-abdomen-pelvis`` do; ``chest`` and ``abdomen-pelvis`` do not; ``pulmonary-angiography``
    and ``coronary-angiography`` do not (different territories). Regions of different groups never overlap here,
    ``whole-body`` included: what a whole-body study covers is the rule file's judgement, not the vocabulary's.
    """
    ra, rb = REGIONS.get(a or ""), REGIONS.get(b or "")
    if ra is None or rb is None:
        return False
    return ra.group == rb.group and bool(ra.parts & rb.parts)


def comparable_regions(a: str | None, b: str | None, modality: str | None = None) -> bool:
    """Whether two regions are comparable as the rule table reads: they image a common part (:func:`overlaps`).

    The same for every modality: CT chest compares with CT chest-abdomen-pelvis but not with CT abdomen-pelvis, a
    chest radiograph is not an abdominal one, limbs must share a part and spine a level, angiography compares within
    one vascular territory. Unknown regions never compare.

    Parameters
    ----------
    a, b : str or None
        Values of :data:`BODY_REGIONS`.
    modality : str, optional
        The normalised modality; kept for callers, it no longer changes the answer.
    """
    return overlaps(a, b)


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
    if key in _LATERALITY_WORDS:
        return _LATERALITY_WORDS[key]
    # "(L)", "R)", "Lt side", "left only", "Right-sided": every word that is a side names the same one
    words = [w for w in re.split(r"[^A-Z0-9]+", key.replace("-SIDED", " ")) if w and w not in _NOT_A_SIDE]
    sides = {_LATERALITY_WORDS.get(w) for w in words}
    if sides == {LEFT, RIGHT}:  # "left and right", "L + R"
        return BOTH
    return sides.pop() if len(sides) == 1 and None not in sides else None


_LATERALITY_WORDS = {
    "L": LEFT, "LT": LEFT, "LFT": LEFT, "LEFT": LEFT, "7771000": LEFT, "G-A101": LEFT,
    "R": RIGHT, "RT": RIGHT, "RGT": RIGHT, "RGHT": RIGHT, "RIGHT": RIGHT, "24028007": RIGHT, "G-A100": RIGHT,
    "B": BOTH, "BI": BOTH, "BIL": BOTH, "BILAT": BOTH, "BILATERAL": BOTH, "BOTH": BOTH, "51440002": BOTH,
    "G-A102": BOTH, "LR": BOTH, "RL": BOTH,
    "N": NONE, "NONE": NONE, "M": NONE, "MIDLINE": NONE, "8": NONE, "UNPAIRED": NONE, "66459002": NONE,
}
#: Words beside a side that do not change it ("Lt side", "left only", "right sided")
_NOT_A_SIDE = frozenset({"SIDE", "SIDED", "ONLY", "SIDES", "AND"})
