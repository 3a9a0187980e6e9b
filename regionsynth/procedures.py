"""The curated procedure map: NICIP-style codes with modality, body region, laterality, typical dose and the way each
trust describes them.

NICIP itself is licensed (NHS TRUD), so the generator ships only a small hand-written map in
``data/procedures.csv``: one row per code, with three description styles (``terse`` "CT HEAD W/O", ``long``
"CT Head without contrast", ``short`` "CT Head") that trusts choose between, and the dose figures that the DICOM
writer draws around (CTDIvol and scan length for CT, dose-area product per view for projection X-ray, average
glandular dose per view for mammography), centred near the UK national diagnostic reference levels.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from functools import cache
from importlib import resources

from regionsynth.geography import WeightedChoice

NICIP_SYSTEM = "https://fhir.nhs.uk/CodeSystem/NICIP"  # our convention for the curated map's codes in FHIR
SNOMED_SYSTEM = "http://snomed.info/sct"
DCM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"
LATERALITY_SCT = {"L": ("7771000", "Left"), "R": ("24028007", "Right"), "B": ("51440002", "Right and left")}
IONISING = frozenset({"CT", "XR", "MG", "NM", "RF"})


@dataclass(frozen=True, slots=True)
class Procedure:
    """One code of the curated map."""

    code: str
    modality: str
    region: str
    body_part: str
    laterality: str
    contrast: str
    weight: float
    sex: str
    min_age: int
    max_age: int
    specialist: bool
    views: int
    ctdivol: float
    scan_cm: float
    events: int
    phantom: str
    target_sct: str
    target_display: str
    dap_gycm2: float
    agd_mgy: float
    site_sct: str
    site_display: str
    terse: str
    long: str
    short: str

    def description(self, style: str) -> str:
        """The free-text description a trust with ``style`` writes."""
        return getattr(self, style)

    def suits(self, sex: str, age: int) -> bool:
        """Whether the procedure is done on patients of this sex and age."""
        return (not self.sex or self.sex == sex) and self.min_age <= age <= self.max_age

    @property
    def ionising(self) -> bool:
        """Whether the procedure uses ionising radiation."""
        return self.modality in IONISING


def dicom_modality(procedure: Procedure) -> str:
    """The DICOM Modality (0008,0060) of the procedure's images: projection radiographs are DX."""
    return "DX" if procedure.modality == "XR" else procedure.modality


def _number(text: str, kind: type = float):  # type: ignore[no-untyped-def]
    return kind(text) if text else kind(0)


@cache
def procedures() -> tuple[Procedure, ...]:
    """The curated map, from the packaged table."""
    text = resources.files("regionsynth.data").joinpath("procedures.csv").read_text(encoding="utf-8")
    out = []
    for row in csv.DictReader(text.splitlines()):
        out.append(Procedure(
            code=row["code"], modality=row["modality"], region=row["region"], body_part=row["body_part"],
            laterality=row["laterality"], contrast=row["contrast"], weight=float(row["weight"]), sex=row["sex"],
            min_age=_number(row["min_age"], int), max_age=_number(row["max_age"], int) or 120,
            specialist=row["specialist"] == "1", views=_number(row["views"], int) or 1,
            ctdivol=_number(row["ctdivol"]), scan_cm=_number(row["scan_cm"]), events=_number(row["events"], int) or 1,
            phantom=row["phantom"], target_sct=row["target_sct"], target_display=row["target_display"],
            dap_gycm2=_number(row["dap_gycm2"]), agd_mgy=_number(row["agd_mgy"]), site_sct=row["site_sct"],
            site_display=row["site_display"], terse=row["terse"], long=row["long"], short=row["short"]))
    return tuple(out)


@cache
def by_code() -> dict[str, Procedure]:
    """The curated map by code."""
    return {p.code: p for p in procedures()}


class ProcedurePicker:
    """Draws procedures: a modality by the configured mix, then a code of that modality by its weight.

    Parameters
    ----------
    modality_mix
        Relative share of studies per modality.
    """

    def __init__(self, modality_mix: dict[str, float]) -> None:
        table = procedures()
        mix = {m: w for m, w in modality_mix.items() if any(p.modality == m for p in table)}
        self._modality = WeightedChoice(list(mix), list(mix.values()))
        self._by_modality = {m: [p for p in table if p.modality == m] for m in mix}
        self._specialist = [p for p in table if p.specialist]

    def pick(self, rng: random.Random, sex: str, age: int, specialist: bool = False) -> Procedure:
        """A procedure suited to the patient; ``specialist`` restricts to the specialist centre's work."""
        for _ in range(20):
            pool = self._specialist if specialist else self._by_modality[self._modality(rng)]
            fitting = [p for p in pool if p.suits(sex, age)]
            if fitting:
                return WeightedChoice(fitting, [p.weight for p in fitting])(rng)
        return by_code()["XCHES"]

    def comparable_to(self, rng: random.Random, procedure: Procedure, same_code: bool = True) -> Procedure:
        """The same procedure, or another code of the same modality, region and laterality."""
        if same_code:
            return procedure
        peers = [p for p in self._by_modality.get(procedure.modality, [])
                 if p.region == procedure.region and p.laterality == procedure.laterality]
        return rng.choice(peers) if peers else procedure
