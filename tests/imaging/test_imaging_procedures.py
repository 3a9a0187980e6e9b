"""imaging.procedures: the trusts' naming habits read into modality, region, laterality and contrast."""

from __future__ import annotations

import pytest

from imaging.codetables import CodeTable, entry_from_text
from imaging.procedures import (
    ProcedureCode,
    normalise_description,
    normalise_modality,
    normalise_procedure,
    study_modality,
)


@pytest.mark.parametrize(("text", "modality", "region", "laterality", "contrast"), [
    ("CT HEAD W/O", "CT", "head", "none", False),  # W/O is without contrast
    ("XR L WRIST 2V", "XR", "wrist", "left", False),  # a lone L is left; 2V is the number of views
    ("CT Chest Abdo Pelvis with contrast", "CT", "chest-abdomen-pelvis", "none", True),
    ("MRI L KNEE", "MR", "knee", "left", None),  # MR without a contrast word: unknown
    ("US ABDOMEN", "US", "abdomen", "none", False),
    ("CTPA", "CT", "pulmonary-angiography", "none", True),  # a CT pulmonary angiogram is contrast enhanced
    ("Mammogram bilateral", "MG", "breast", "both", False),
    ("XR L SPINE", "XR", "lumbar-spine", "none", False),  # the L of "L SPINE" is lumbar, not left
    ("XR C-Spine", "XR", "cervical-spine", "none", False),
    ("XR HANDS", "XR", "hand", "both", False),  # a plural of a paired part is both sides
    ("XR NOF RT", "XR", "hip", "right", False),  # neck of femur is the hip, not the neck
    ("CT ABDO/PELVIS WO", "CT", "abdomen-pelvis", "none", False),
    ("CT CAP W/ contrast", "CT", "chest-abdomen-pelvis", "none", True),
    ("CT chest, abdomen & pelvis + C", "CT", "chest-abdomen-pelvis", "none", True),
    ("CT Angio Circle of Willis", "CT", "head-neck-angiography", "none", True),
    ("XR Rt Hand and Wrist", "XR", "upper-limb", "right", False),  # two parts of one limb: the limb
    ("US Breast Left", "US", "breast", "left", False),
    ("MRI LUMBAR SPINE W/WO", "MR", "lumbar-spine", "none", True),  # with and without: contrast given
    ("NM bone scan", "NM", "whole-body", "none", None),
    ("CT KUB", "CT", "abdomen-pelvis", "none", None),
    ("Mobile image intensifier thorax", "RF", "chest", "none", None),  # a Siemens C-arm's study description
    ("Ba enema", "RF", "abdomen-pelvis", "none", True),  # BA is barium before a fluoroscopic study's name
    ("HSG", "RF", "pelvis", "none", None),
    ("V/Q scan", "NM", "chest", "none", None),
])
def test_trust_descriptions(text: str, modality: str, region: str, laterality: str, contrast: bool | None) -> None:
    result = normalise_description(text)
    assert (result.modality, result.body_region, result.laterality, result.contrast) == (
        modality, region, laterality, contrast)
    assert result.normalisation == "description"


@pytest.mark.parametrize("text", ["Widget scan", "Echo", "", None, "Huvud"])
def test_unknowns_are_reported_not_guessed(text: str | None) -> None:
    result = normalise_description(text)
    assert result.normalisation == "unknown"
    assert result.body_region is None


def test_paired_part_without_side_has_unknown_laterality() -> None:
    assert normalise_description("XR KNEE").laterality is None  # unknown, which is not "none"


def test_modality_hint_wins_over_the_text() -> None:
    assert normalise_description("CT HEAD", "MR").modality == "MR"
    assert normalise_description("HEAD", "CT").modality == "CT"


def test_several_regions_are_all_named_with_the_first_chosen() -> None:
    result = normalise_description("CT HEAD AND C SPINE")
    assert result.body_region == "head"
    assert result.regions == ("head", "cervical-spine")


@pytest.mark.parametrize(("dicom", "expected"), [
    ("CR", "XR"), ("DX", "XR"), ("PT", "PT"), ("SR", None), ("KO", None), ("", None), (None, None)])
def test_normalise_modality(dicom: str | None, expected: str | None) -> None:
    assert normalise_modality(dicom) == expected


def test_study_modality_prefers_the_nuclear_part_of_hybrids() -> None:
    assert study_modality(["CT", "SR"]) == "CT"
    assert study_modality(["CT", "PT"]) == "PT"
    assert study_modality(["SR"]) is None


def test_a_known_code_wins_over_the_description() -> None:
    table = CodeTable().extend([entry_from_text("LN", "36643-5", "XR Chest 2 Views")])
    result = normalise_procedure([ProcedureCode("LN", "36643-5")], "CT HEAD", table=table)
    assert (result.normalisation, result.body_region, result.modality) == ("code", "chest", "XR")


def test_code_table_gaps_are_filled_from_the_description() -> None:
    table = CodeTable().extend([entry_from_text("99LOCAL", "XKNEE", "XR Knee")])  # no side in the code
    result = normalise_procedure([ProcedureCode("99LOCAL", "XKNEE")], "XR KNEE LEFT", table=table)
    assert (result.body_region, result.laterality) == ("knee", "left")


def test_an_unknown_code_falls_back_to_its_display_text() -> None:
    result = normalise_procedure([ProcedureCode("99LOCAL", "ZZ1", "CT Head")], None, table=CodeTable())
    assert (result.normalisation, result.body_region) == ("description", "head")


@pytest.mark.parametrize(("text", "regions", "why"), [
    ("CT head and cervical spine", ("head", "cervical-spine"), "issue 14: indexed only the head"),
    ("CT head and C-spine", ("head", "cervical-spine"), "C-spine"),
    ("CT TAP", ("chest-abdomen-pelvis",), "issue 14: thorax-abdomen-pelvis had no region"),
    ("CT CAP", ("chest-abdomen-pelvis",), "chest-abdomen-pelvis"),
    ("CT NCAP", ("chest-abdomen-pelvis", "neck"), "neck, chest, abdomen and pelvis"),
    ("CT AP", ("abdomen-pelvis",), "AP is abdomen-pelvis on a CT request"),
    ("XR chest AP", ("chest",), "but a projection on a radiograph"),
    ("CT KUB", ("abdomen-pelvis",), "kidneys-ureters-bladder"),
    ("CTKUB", ("abdomen-pelvis",), "written as one word"),
    ("CTPA", ("pulmonary-angiography",), "pulmonary angiogram"),
    ("CTC", ("abdomen-pelvis",), "CT colonography"),
    ("HRCT", ("chest",), "high-resolution chest"),
    ("CT IAMs", ("head",), "internal auditory meati"),
    ("MR IAM", ("head",), "one meatus"),
    ("CT C/T/L spine", ("whole-spine",), "the three levels"),
    ("MR T/L spine", ("thoracic-spine", "lumbar-spine"), "two levels: each of them, not the cervical spine"),
    ("CT trauma pan-scan", ("whole-body",), "a trauma pan-scan is whole-body"),
    ("CT head and CTA head and neck", ("head", "head-neck-angiography"),
     "a stroke protocol: the head and the head-and-neck vessels"),
    ("CT chest and CTPA", ("chest", "pulmonary-angiography"), "a chest CT with a CTPA"),
    ("CTA head and neck", ("head-neck-angiography",), "the territory, not the head and the neck"),
    ("CT coronary angiogram", ("coronary-angiography",), "coronary territory"),
    ("PTC/Nefro", ("abdomen",), "a Siemens protocol: percutaneous transhepatic cholangiography, nephrostomy"),
    ("XA nephrostomy", ("abdomen",), "nephrostomy"),
    ("RF ERCP", ("abdomen",), "ERCP"),
    ("FL - High Con.", (), "a fluoroscopy protocol that names no part stays unknown"),
    ("Ba Swallow", ("chest",), "a Canon fluoroscopy protocol: barium swallow, the oesophagus"),
    ("CT oesophagus", ("chest",), "the oesophagus is read as the chest"),
    ("Gastrostomy Insertion", ("abdomen",), "a requested procedure: gastrostomy, the stomach"),
    ("RF barium meal", ("abdomen",), "barium meal, the stomach"),
    ("Jaw region", ("face",), "the meaning of SNOMED 661005 (an Anatomic Region Sequence of a dental panoramic)"),
    ("Gastro 7.5f/s Middle", (), "a vendor programme name, not a part: stays unknown"),
    ("Videofluoroscopy swallow", (), "a swallow study names no part by itself: stays unknown"),
    ("Transesophageal Echocardiogram", ("chest",), "an echocardiogram images the heart (Echo alone stays unknown)"),
    ("XR OM views", ("face",), "occipitomental views: the facial bones"),
    ("X-ray Orthopantomogram", ("face",), "H-CMP-18: NICIP XOPTG's name, spelt out (was unknown: no prior shown)"),
    ("Orthopantomography", ("face",), "H-CMP-18: the technique's name"),
    ("Dental panoramic tomogram", ("face",), "H-CMP-18: the UK's DPT, spelt out"),
    ("DPT", ("face",), "H-CMP-18: and abbreviated"),
    ("XR facial bones OM 30", ("face",), "the 30-degree occipitomental view"),
    ("Ba enema", ("abdomen-pelvis",), "a barium enema images the colon and rectum"),
    ("RF water soluble contrast enema", ("abdomen-pelvis",), "a contrast enema, the same"),
    ("HSG", ("pelvis",), "hysterosalpingogram: the uterus and tubes"),
    ("MCUG", ("pelvis",), "micturating cystourethrogram: the bladder and urethra"),
    ("MR enterography", ("abdomen-pelvis",), "the small bowel down to the terminal ileum in the pelvis"),
    ("NM V/Q scan", ("chest",), "ventilation-perfusion: the lungs"),
    ("Enema", (), "an enema without contrast named is not read as a study of its own"),
])
def test_every_region_a_description_names_and_uk_abbreviations(text: str, regions: tuple[str, ...],
                                                                 why: str) -> None:
    result = normalise_description(text)
    assert result.regions == regions, why
    assert result.body_region == (regions[0] if regions else None), why


def test_a_code_whose_display_names_several_regions_keeps_them_all() -> None:
    from imaging.procedures import ProcedureCode, normalise_procedure

    result = normalise_procedure([ProcedureCode("urn:trust:rtk:procedures", "CTHCS", "CT head and cervical spine")])
    assert result.regions == ("head", "cervical-spine")


@pytest.mark.parametrize(("text", "modality", "region", "regions", "laterality", "why"), [
    ("CT ABD/PEL W CON", "CT", "abdomen-pelvis", ("abdomen-pelvis",), "none", "PEL is the pelvis (was abdomen)"),
    ("CT ABD PELV", "CT", "abdomen-pelvis", ("abdomen-pelvis",), "none", "and PELV"),
    ("MRI cervical and thoracic spine", "MR", "cervical-spine", ("cervical-spine", "thoracic-spine"), "none",
     "levels listed before one spine (was thoracic only)"),
    ("MRI C+T+L spine", "MR", "whole-spine", ("whole-spine",), "none", "C+T+L is every level (was lumbar)"),
    ("XR C & L spine", "XR", "cervical-spine", ("cervical-spine", "lumbar-spine"), "none",
     "two levels, the L a level, not a side"),
    ("MRI Cx spine", "MR", "cervical-spine", ("cervical-spine",), "none", "Cx is cervical (was the whole spine)"),
    ("MRI SIJs", "MR", "pelvis", ("pelvis",), "none", "SIJs (was unknown)"),
    ("CT colon", "CT", "abdomen-pelvis", ("abdomen-pelvis",), "none", "was unknown"),
    ("Trauma CT", "CT", "whole-body", ("whole-body",), "none", "a trauma CT naming no region is the pan-scan"),
    ("CT head - trauma", "CT", "head", ("head",), "none", "one naming a region is that region"),
    ("CT Trauma scan (head to pelvis)", "CT", "whole-body", ("whole-body",), "none", "was head and pelvis"),
    ("Full body CT", "CT", "whole-body", ("whole-body",), "none", "was unknown"),
    ("PET CT skull base to mid thigh", "PT", "whole-body", ("whole-body",), "none", "was also head and femur"),
    ("CT ? PE", "CT", "pulmonary-angiography", ("pulmonary-angiography",), "none", "was unknown"),
    ("CT PE study", "CT", "pulmonary-angiography", ("pulmonary-angiography",), "none", "was unknown"),
    ("XR chest ?PE", "XR", "chest", ("chest",), "none", "a radiograph asked for ?PE stays a chest radiograph"),
    ("CT Aorta (dissection protocol)", "CT", "aortic-angiography", ("aortic-angiography",), "none", "was unknown"),
    ("CT TAVI planning", "CT", "aortic-angiography", ("aortic-angiography",), "none", "was unknown"),
    ("CT chest abdomen pelvis ?dissection", "CT", "chest-abdomen-pelvis", ("chest-abdomen-pelvis",), "none",
     "a CT naming its regions keeps them whatever the question"),
    ("CTA renal arteries", "CT", "aortic-angiography", ("aortic-angiography",), "none",
     "visceral branches: the aortic territory (was every territory)"),
    ("CT Stroke protocol (non-con head, CTA, perfusion)", "CT", "head", ("head", "head-neck-angiography"), "none",
     "a bare CTA beside a CT head is the head-and-neck territory (was every territory)"),
    ("CT arch to vertex angiogram", "CT", "head-neck-angiography", ("head-neck-angiography",), "none",
     "arch to vertex (was every territory)"),
    ("CTV head", "CT", "head-neck-angiography", ("head-neck-angiography",), "none", "a CT venogram (was no modality)"),
    ("CT coronary calcium score", "CT", "chest", ("chest",), "none", "as a cardiac CT (was unknown)"),
    ("US carotids", "US", "neck", ("neck",), "none", "was unknown"),
    ("XR Tib + fib Rt", "XR", "lower-leg", ("lower-leg",), "right", "'+' is 'and' (was unknown)"),
    ("XR Lft foot", "XR", "foot", ("foot",), "left", "Lft is left (was unknown)"),
    ("XR Rght foot", "XR", "foot", ("foot",), "right", "Rght is right (was unknown)"),
    ("CT heaad", "CT", "head", ("head",), "none", "one letter too many (was unknown)"),
    ("CT Haed", "CT", "head", ("head",), "none", "two letters swapped (was unknown)"),
    ("CT Throax abdoman pelivs", "CT", "chest-abdomen-pelvis", ("chest-abdomen-pelvis",), "none", "was unknown"),
    ("XR kneee left", "XR", "knee", ("knee",), "left", "near KNEE and KNEES, the knee either way (was unknown)"),
    ("CT AbdPelvis", "CT", "abdomen-pelvis", ("abdomen-pelvis",), "none", "camel case, word by word (was unknown)"),
    ("MR WholeBody^Myeloma", "MR", "whole-body", ("whole-body",), "none", "was unknown"),
    ("XR #NoF Rt", "XR", "hip", ("hip",), "right", "camel case is split only after two small letters: NoF stays NOF"),
    ("Angio^01_CTA_Carotid (Adult)", "CT", "head-neck-angiography", ("head-neck-angiography",), "none",
     "a bare angio beside a named territory is that territory (was also every territory)"),
    ("CT IAC", "CT", "head", ("head",), "none", "internal auditory canals (was unknown)"),
    ("Computed tomography of chest, abdomen and pelvis", "CT", "chest-abdomen-pelvis", ("chest-abdomen-pelvis",),
     "none", "a SNOMED CT term names its modality in words (was no modality: nothing compared)"),
    ("Ultrasonography of abdomen", "US", "abdomen", ("abdomen",), "none", "was no modality"),
    ("Computerised tomography of head", "CT", "head", ("head",), "none", "British spelling"),
    ("PT+CT Skull base to mid-thigh", "PT", "whole-body", ("whole-body",), "none", "LOINC's PET-CT (was CT)"),
    ("US Lower extremity veins - left", "US", "lower-limb", ("lower-limb",), "left", "LOINC's limbs (was unknown)"),
    ("XR Babygram", "XR", "chest-abdomen", ("chest-abdomen",), "none", "a newborn's chest and abdomen"),
    ("CTA aorta and lower limb runoff", "CT", "aortic-angiography", ("aortic-angiography", "peripheral-angiography"),
     "none", "every territory an angiogram names (was the aorta only)"),
    ("CT angiogram heart", "CT", "coronary-angiography", ("coronary-angiography",), "none", "the heart's vessels"),
    # the second sweep (H-CMP-12: was unknown or another region, a prior hidden; H-CMP-13: a prior wrongly flagged)
    ("US TV", "US", "pelvis", ("pelvis",), "none", "transvaginal (was unknown)"),
    ("TVUS", "US", "pelvis", ("pelvis",), "none", "was no modality and unknown"),
    ("TV US", "US", "pelvis", ("pelvis",), "none", "was unknown"),
    ("US Obs growth scan", "US", "pelvis", ("pelvis",), "none", "obstetric (was unknown)"),
    ("US Urinary tract", "US", "abdomen-pelvis", ("abdomen-pelvis",), "none", "kidneys and bladder (was unknown)"),
    ("US Renal tract", "US", "abdomen-pelvis", ("abdomen-pelvis",), "none", "kidneys and bladder (was abdomen)"),
    ("US Testicular", "US", "pelvis", ("pelvis",), "none", "was unknown"),
    ("US Pylorus", "US", "abdomen", ("abdomen",), "none", "was unknown"),
    ("CTA chest", "CT", "pulmonary-angiography", ("pulmonary-angiography", "aortic-angiography"), "none",
     "the chest's vessels: pulmonary arteries and thoracic aorta (was every territory)"),
    ("CT angiogram thorax", "CT", "pulmonary-angiography", ("pulmonary-angiography", "aortic-angiography"), "none",
     "was every territory"),
    ("CTA CAP", "CT", "aortic-angiography", ("aortic-angiography",), "none",
     "the trunk's aorta (was every territory)"),
    ("CTA thoracic aorta", "CT", "aortic-angiography", ("aortic-angiography",), "none",
     "a named aorta stays the aorta"),
    ("CT Chest ?PE", "CT", "pulmonary-angiography", ("pulmonary-angiography",), "none", "a CTPA (was CT chest)"),
    ("CT Thorax (PE)", "CT", "pulmonary-angiography", ("pulmonary-angiography",), "none", "was CT chest"),
    ("CT pulm angio", "CT", "pulmonary-angiography", ("pulmonary-angiography",), "none", "was every territory"),
    ("C.T.P.A.", "CT", "pulmonary-angiography", ("pulmonary-angiography",), "none", "dotted (was unknown)"),
    ("CXR ?PE", "XR", "chest", ("chest",), "none", "on a radiograph PE is as often a pleural effusion: a chest"),
    ("CT CAP ?PE", "CT", "chest-abdomen-pelvis", ("chest-abdomen-pelvis",), "none", "a CT naming more than the chest"),
    ("CT coronaries", "CT", "coronary-angiography", ("coronary-angiography",), "none", "was unknown"),
    ("NM Renogram MAG3", "NM", "abdomen", ("abdomen",), "none", "the kidneys (was unknown)"),
    ("NM DMSA", "NM", "abdomen", ("abdomen",), "none", "was unknown"),
    ("NM Myocardial perfusion", "NM", "chest", ("chest",), "none", "the heart (was unknown)"),
    ("NM Parathyroid", "NM", "neck", ("neck",), "none", "was unknown"),
    ("NM DaTscan", "NM", "head", ("head",), "none", "was unknown"),
    ("NM HIDA", "NM", "abdomen", ("abdomen",), "none", "was unknown"),
    ("MRI Calf Lt", "MR", "lower-leg", ("lower-leg",), "left", "was unknown"),
    ("MRI Forefoot Lt", "MR", "foot", ("foot",), "left", "was unknown"),
    ("US Achilles Lt", "US", "ankle", ("ankle",), "left", "was unknown"),
    ("US Plantar fascia Rt", "US", "foot", ("foot",), "right", "was unknown"),
    ("XR Odontoid peg", "XR", "cervical-spine", ("cervical-spine",), "none", "was unknown"),
    ("Tomo bilat", "MG", "breast", ("breast",), "both", "tomosynthesis (was no modality, unknown)"),
    ("CTB", "CT", "head", ("head",), "none", "CT brain (was no modality, unknown)"),
    ("MRI MSCC", "MR", "whole-spine", ("whole-spine",), "none", "metastatic cord compression (was unknown)"),
    ("MRI L spine ?cord compression", "MR", "lumbar-spine", ("lumbar-spine",), "none", "a named level stays it"),
    ("NM Q scan", "NM", "chest", ("chest",), "none", "lung perfusion (was unknown)"),
    ("DBT bilateral", "MG", "breast", ("breast",), "both", "digital breast tomosynthesis (was unknown)"),
    ("MRI Lumber spine", "MR", "lumbar-spine", ("lumbar-spine",), "none", "misspelt level (was the whole spine)"),
    ("MRI Cervicle spine", "MR", "cervical-spine", ("cervical-spine",), "none", "was the whole spine"),
    ("CT Thorasic spine", "CT", "thoracic-spine", ("thoracic-spine",), "none", "was the whole spine"),
    ("XR L/S", "XR", "lumbar-spine", ("lumbar-spine",), "none", "lumbosacral, not left (was unknown, left)"),
    ("MRI C/S", "MR", "cervical-spine", ("cervical-spine",), "none", "was unknown"),
    ("MRI C/S spine", "MR", "cervical-spine", ("cervical-spine",), "none", "was the whole spine"),
    ("XR LSS", "XR", "lumbar-spine", ("lumbar-spine",), "none", "was unknown"),
    ("US pelvis post C/S", "US", "pelvis", ("pelvis",), "none", "on ultrasound C/S is a caesarean section"),
    # the reference audit (H-CMP-14): REFERENCE.md's abbreviations in the spellings request forms use
    ("WBCT", "CT", "whole-body", ("whole-body",), "none", "whole-body CT, the trauma pan-scan (was nothing read)"),
    ("WB CT", "CT", "whole-body", ("whole-body",), "none", "the same in two words (was no region)"),
    ("CT NTAP", "CT", "chest-abdomen-pelvis", ("chest-abdomen-pelvis", "neck"), "none",
     "neck, thorax, abdomen and pelvis, as NCAP (was no region)"),
    ("CT neck to pelvis", "CT", "chest-abdomen-pelvis", ("chest-abdomen-pelvis", "neck"), "none",
     "a range images what lies between (was the neck and the pelvis: the chest and abdomen lost)"),
    ("CT neck to thighs", "CT", "chest-abdomen-pelvis", ("chest-abdomen-pelvis", "neck"), "none",
     "was the neck and the femur"),
    ("CT K.U.B", "CT", "abdomen-pelvis", ("abdomen-pelvis",), "none", "a dotted KUB (was no region)"),
    ("HR CT", "CT", "chest", ("chest",), "none", "high-resolution CT in two words (was no region)"),
    ("NCCT head", "CT", "head", ("head",), "none", "non-contrast CT (was no modality)"),
    ("FDG PET", "PT", "whole-body", ("whole-body",), "none", "a PET naming no part is skull base to thighs (was none)"),
    ("PSMA PET scan", "PT", "whole-body", ("whole-body",), "none", "was no region"),
    ("PET brain", "PT", "head", ("head",), "none", "a PET naming its part is that part"),
    ("CMR", "MR", "chest", ("chest",), "none", "cardiac MR (was no modality, no region)"),
    ("MRI ?CES", "MR", "lumbar-spine", ("lumbar-spine",), "none", "cauda equina syndrome (was no region)"),
    ("MRI ?cauda equina", "MR", "lumbar-spine", ("lumbar-spine",), "none", "written out (was no region)"),
    ("CT myelogram", "CT", "whole-spine", ("whole-spine",), "none", "was no region"),
    ("CT PNS", "CT", "face", ("face", "neck"), "none",
     "paranasal sinuses or post-nasal space: both, the safer reading (was no region)"),
    ("US L groin ?hernia", "US", "pelvis", ("pelvis",), "left", "the groin (was no region)"),
    ("US inguinal hernia", "US", "pelvis", ("pelvis",), "none", "was no region"),
    ("Dating scan", "US", "pelvis", ("pelvis",), "none", "an obstetric scan is an ultrasound (was no modality)"),
    ("Virtual colonoscopy", "CT", "abdomen-pelvis", ("abdomen-pelvis",), "none", "was no modality"),
    ("IVU", "XR", "abdomen-pelvis", ("abdomen-pelvis",), "none", "intravenous urogram films (was no modality)"),
    ("XR OM", "XR", "face", ("face",), "none", "the occipitomental view (was no region)"),
    ("XR pelvis frog leg", "XR", "pelvis", ("pelvis", "hip"), "none",
     "a frog-leg view is of the hips (was the pelvis and the whole lower limb: an ankle compared)"),
    ("XR L hip frog lateral", "XR", "hip", ("hip",), "left", "the hip's own frog lateral"),
    ("US DVT R", "US", "lower-limb", ("lower-limb",), "right", "a DVT scan naming no limb is the leg (was no region)"),
    ("US venous duplex R LL", "US", "lower-limb", ("lower-limb",), "right", "LL is the lower limb (was no region)"),
    ("US DVT R arm", "US", "upper-limb", ("upper-limb",), "right", "one naming the arm is the arm"),
    ("US L eye", "US", "face", ("face",), "left", "the eye is the orbit (was no region)"),
    ("USS A+P", "US", "abdomen-pelvis", ("abdomen-pelvis",), "none", "A+P is the abdomen and pelvis (was no region)"),
    ("CT A & P with contrast", "CT", "abdomen-pelvis", ("abdomen-pelvis",), "none", "and A & P"),
    ("XR L knee A/P and lateral", "XR", "knee", ("knee",), "left", "an A/P view is not the abdomen and pelvis"),
])
def test_uk_request_wording(text: str, modality: str, region: str, regions: tuple[str, ...], laterality: str,
                            why: str) -> None:
    result = normalise_description(text)
    assert (result.modality, result.body_region, result.regions, result.laterality) == (
        modality, region, regions, laterality), why


@pytest.mark.parametrize("text", ["XR supine", "Facet joint injection", "XR long", "CT scan", "MR TV"])
def test_words_near_an_anatomical_word_are_not_respelt(text: str) -> None:
    assert normalise_description(text).body_region is None  # unknown, counted as such: never a guessed region


@pytest.mark.parametrize(("text", "contrast"), [
    ("CT Head + C spine", None),  # a C-spine after "+", not "+C" (was: with contrast)
    ("CT Head C-", False),  # C- is without contrast (was unknown)
    ("CT head C+", True),
    ("CT chest, abdomen & pelvis + C", True),
    ("CT head non-con", False),  # H-CMP-14: "non-con" (was unknown)
    ("CT head noncon", False),
    ("NCCT head", False),  # non-contrast CT
    ("CECT abdomen", True),  # contrast-enhanced CT
    ("IVU", True),  # an intravenous urogram is contrast (was none: a radiograph's default)
    ("CT head w/wo contrast", True),
])
def test_contrast_plus_and_minus(text: str, contrast: bool | None) -> None:
    assert normalise_description(text).contrast is contrast
