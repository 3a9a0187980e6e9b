"""Procedure normalisation: modality, body region, laterality and contrast from codes and free text.

The five trusts name the same examination in many ways ("CT HEAD W/O", "XR L WRIST 2V", "CT Chest Abdo Pelvis with
contrast", "MRI L KNEE", "US ABDOMEN", "CTPA", "Mammogram bilateral"). :func:`normalise_description` reads such
text into the vocabulary of :mod:`imaging.regions`; :func:`normalise_procedure` prefers a procedure code found in a
code table (:mod:`imaging.codetables`) and falls back to the text.

Nothing is guessed silently: when the body region cannot be read the result says ``normalisation="unknown"``, and
callers count it. Pure functions: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

from imaging import regions as rg

if TYPE_CHECKING:
    from imaging.codetables import CodeTable

CODE = "code"
DESCRIPTION = "description"
UNKNOWN = "unknown"

#: Normalised modalities (the rule table's words; DICOM CR and DX are both XR, PET is PT).
MODALITIES = ("CT", "MR", "US", "XR", "MG", "NM", "PT", "RF", "XA", "BMD")
_DICOM_MODALITY = {"CT": "CT", "MR": "MR", "US": "US", "CR": "XR", "DX": "XR", "DR": "XR", "XR": "XR", "RG": "XR",
                   "IO": "XR", "PX": "XR", "MG": "MG", "NM": "NM", "PT": "PT", "PET": "PT", "RF": "RF", "XA": "XA",
                   "BMD": "BMD", "BDUS": "BMD", "DXA": "BMD", "MRI": "MR"}
_NO_CONTRAST_BY_DEFAULT = {"XR", "US", "MG", "BMD"}


@dataclass(frozen=True)
class ProcedureCode:
    """A procedure code as a feed sends it (``system`` may be a DICOM coding scheme designator or a URI)."""

    system: str | None
    code: str
    display: str | None = None


@dataclass(frozen=True)
class NormalisedProcedure:
    """What an examination is, in the shared vocabulary; ``normalisation`` says how it was found."""

    modality: str | None = None
    body_region: str | None = None
    laterality: str | None = None  # left | right | both | none; None when unknown
    contrast: bool | None = None
    normalisation: str = UNKNOWN  # code | description | unknown
    regions: tuple[str, ...] = ()  # every region named, the chosen one first
    code: ProcedureCode | None = None
    #: each region's own side, when a description names sides that differ by region ("left wrist and right
    #: ankle": ``(("wrist", "left"), ("ankle", "right"))``, ``laterality`` then ``both``); empty otherwise
    sides: tuple[tuple[str, str], ...] = ()


def normalise_modality(value: str | None) -> str | None:
    """A DICOM modality (``CR``, ``DX``, ``PT`` ...) as one of :data:`MODALITIES`; ``None`` for SR, KO, PR, OT."""
    if not value:
        return None
    return _DICOM_MODALITY.get(value.strip().upper())


def study_modality(modalities: Sequence[str | None]) -> str | None:
    """The imaging modality of a study from its modalities in study (``CT\\SR`` is CT; ``PT\\CT`` is PT)."""
    normalised = [m for m in (normalise_modality(v) for v in modalities) if m]
    if not normalised:
        return None
    for preferred in ("PT", "NM", "MG"):  # PET-CT and SPECT-CT are filed under the nuclear modality
        if preferred in normalised:
            return preferred
    return normalised[0]


# --- text ------------------------------------------------------------------------------------------------------------

def _clean(text: str) -> str:
    upper = _CAMEL_CASE.sub(" ", text).upper()  # scanner protocol names: "AbdPelvis", "WholeBody", "CaScore"
    upper = re.sub(r"\bB/L\b", " BILATERAL ", upper)
    upper = re.sub(r"\bW\s*/\s*WO\b|\bW\s*/\s*W/?O\b|\bW\s*(?:&|AND)\s*W/?O\b|\bWITH\s+AND\s+WITHOUT\b", " WWO ", upper)
    upper = re.sub(r"\bW\s*/\s*O\b|\bW/O\b|\bWO\b|\bW\.O\.", " WO ", upper)
    upper = re.sub(r"\bW\s*/\s*(?=[A-Z+])|\bW/$", " WITH ", upper)
    upper = _CONTRAST_PLUS.sub(" C PLUS ", upper)
    upper = _CONTRAST_MINUS.sub(" NON CONTRAST ", upper)
    upper = upper.replace("&", " AND ").replace("+", " AND ")  # "Tib + fib", "C+T+L spine": a list, not contrast
    upper = re.sub(r"[^A-Z0-9]+", " ", upper)
    upper = " ".join(_LEVEL_MISSPELT.get(word, word) for word in upper.split())
    upper = _SPINE_LEVELS.sub(_each_level, f" {' '.join(upper.split())} ")
    return f" {' '.join(upper.split())} "


_CAMEL_CASE = re.compile(r"(?<=[a-z]{2})(?=[A-Z])")  # not "NoF" (neck of femur)
#: "C+" and "+C" as contrast ("CT head C+", "CT CAP + C"), not where a C-spine or a list of spine levels follows
_CONTRAST_PLUS = re.compile(r"(?<![A-Z0-9])C\s*\+(?!\s*[A-Z0-9])|\+\s*C(?![A-Z0-9])(?!\s*-?\s*[A-Z0-9])")
#: "C-" as without contrast ("CT Head C-"), not the C of "C-spine"
_CONTRAST_MINUS = re.compile(r"(?<![A-Z0-9])C\s*-(?!\s*[A-Z0-9])")
#: Spine levels listed before one "spine" ("cervical and thoracic spine", "C, T & L spine", "C+L spine"): each level
#: is a spine of its own, read as if written "C spine and T spine"
_LEVEL = r"(?:C|CX|T|L|CERVICAL|THORACIC|DORSAL|LUMBAR)"
#: Spine level words as request forms misspell them, read as the level (a bare "spine" beside them would be the whole
#: spine: "MRI Lumber spine" compared with every level)
_LEVEL_MISSPELT = {"CERVICLE": "CERVICAL", "CERVIAL": "CERVICAL", "CERICAL": "CERVICAL", "SERVICAL": "CERVICAL",
                   "CERVICAAL": "CERVICAL", "LUMBER": "LUMBAR", "LUMABR": "LUMBAR", "LUMBR": "LUMBAR",
                   "LUBMAR": "LUMBAR", "THORASIC": "THORACIC", "THORCIC": "THORACIC", "THROACIC": "THORACIC",
                   "THORACIK": "THORACIC"}
_SPINE_LEVELS = re.compile(rf" ((?:{_LEVEL} (?:AND )?)+{_LEVEL}) (SPINES?|SPINAL) ")


def _each_level(match: re.Match[str]) -> str:
    levels = [word for word in match.group(1).split() if word != "AND"]
    return " " + " AND ".join(f"{level} SPINE" for level in levels) + " "


_SPINE = (
    (r" (?:C T L SPINE|C T AND L SPINE|CTL SPINE|C T L S|WHOLE SPINE|FULL SPINE|ENTIRE SPINE) ", "whole-spine"),
    (r" (?:T L SPINE|TL SPINE|THORACOLUMBAR SPINE|THORACOLUMBAR) ", "thoracic-spine"),
    (r" (?:C SPINE|CSPINE|CX SPINE|C S SPINE|CERVICAL SPINE|ODONTOID PEG|ODONTOID|PEG VIEWS?) ", "cervical-spine"),
    (r" (?:T SPINE|TSPINE|T S SPINE|THORACIC SPINE|DORSAL SPINE) ", "thoracic-spine"),
    (r" (?:L SPINE|LSPINE|LS SPINE|L S SPINE|LSS|LUMBAR SPINE|LUMBAR|LUMBOSACRAL SPINE|LUMBOSACRAL|SACRUM|COCCYX|"
     r"CAUDA EQUINA) ", "lumbar-spine"),
    # MSCC: metastatic cord compression; a myelogram images the thecal sac, whatever level it names
    (r" (?:SCOLIOSIS|SPINE|SPINAL|MSCC|CORD COMPRESSION|MYELOGRA\w*) ", "whole-spine"),
)
#: Abbreviations naming one more region than the phrase they are read as (NCAP is a CAP and the neck; a
#: thoracolumbar spine is the thoracic and the lumbar spine; a babygram is a newborn's chest and abdomen).
_ALSO = ((re.compile(r" (?:NCAP|N CAP|NTAP|N TAP|NECK TO (?:PELVIS|(?:MID |UPPER |PROXIMAL )?THIGHS?)) "), "neck"),
         (re.compile(r" BABYGRAM "), "abdomen"),
         # PNS is the paranasal sinuses (the face) on most requests, the post-nasal space (the neck) on head and
         # neck ones: both, so that a prior of either is shown
         (re.compile(r" PNS "), "neck"),
         (re.compile(r" RENAL TRACT "), "pelvis"),  # the kidneys and the bladder
         (re.compile(r"(?<! C) (?:T L SPINE|TL SPINE|THORACOLUMBAR SPINE|THORACOLUMBAR) "), "lumbar-spine"))
#: ``AP`` is abdomen-pelvis on a cross-sectional request ("CT AP"), a projection on a radiograph ("XR chest AP").
_ABDOMEN_PELVIS_CROSS_SECTIONAL = re.compile(r" (?:AP|A P) ")

_ANGIO = re.compile(r" (?:CTPA|CT PA|C T P A|PULMONARY ANGIO\w*|PULMONARY EMBOL\w*|PULMONARY ARTER\w*|"
                    r"PE PROTOCOL|PE STUDY|CTA|CT ANGIO\w*|ANGIO\w*|MRA|CTCA|CORONARY ARTER\w*|MR ANGIO\w*|"
                    r"RUN ?OFF|AORTOGRAM|"
                    r"ARTERIOGRAM|VENOGRAM|CTV|MRV) ")
_ANGIO_SUB = (
    (r" (?:CTPA|CT PA|C T P A|PULMONARY|PULM|PE PROTOCOL|PE STUDY|PE|PES) ", "pulmonary-angiography"),
    (r" (?:CORONARY|CORONARIES|CTCA) ", "coronary-angiography"),
    (r" (?:HEAD|BRAIN|CAROTID\w*|CIRCLE OF WILLIS|COW|INTRACRANIAL|NECK|VERTEBRAL|CEREBRAL|CRANIAL|STROKE|VERTEX|"
     r"VENOUS SINUS\w*|CTV|MRV) ", "head-neck-angiography"),
    (r" (?:AORTA|AORTIC|AORTOGRAM|EVAR|TAVI|TEVAR) ", "aortic-angiography"),
    (r" (?:LOWER LIMB\w*|LEGS?|PERIPHERAL|RUN ?OFF|FEMORAL|SFA|POPLITEAL|UPPER LIMB\w*|ARMS?|ILIAC|LOWER EXTREMIT\w*|"
     r"UPPER EXTREMIT\w*) ", "peripheral-angiography"),
)
#: Words that name a territory only when no word above names one (the first that does, with every territory it
#: names): the heart of a cardiac CTA is its coronaries (but "CTPA ?right heart strain" is no coronary angiogram); the
#: visceral branches of the abdominal aorta (mesenteric, coeliac, renal; a CTA for GI bleeding) and a CTA of the
#: trunk ("CTA CAP", "CTA chest abdomen pelvis") are the aortic territory, never the whole vascular tree; a "CTA
#: chest" names no more than the chest, whose vessels are the pulmonary arteries and the thoracic aorta (not the
#: coronaries, the neck or the limbs)
_ANGIO_SUB_WEAK = (
    (r" (?:CARDIAC|HEART) ", ("coronary-angiography",)),
    (r" (?:MESENTERIC|COELIAC|CELIAC|VISCERAL|SPLANCHNIC|RENAL|ABDOMEN|ABDOMINAL|ABDO|GI BLEED\w*|"
     r"GASTROINTESTINAL BLEED\w*|HEPATIC|CAP|C A P|TAP|T A P|CHEST ABDOMEN AND PELVIS) ", ("aortic-angiography",)),
    (r" (?:CHEST|THORAX|THORACIC) ", ("pulmonary-angiography", "aortic-angiography")),
)
#: What a description names when it names no region at all, by modality: a CT or MR of the aorta is an angiogram of
#: it; a CT for "trauma" is the trauma pan-scan; a CT for "?PE" is a pulmonary angiogram
_ONLY_WORDING = (
    (("CT", "MR"), re.compile(r" (?:AORTA|EVAR|TEVAR|TAVI|TAVR|DISSECTION) "), "aortic-angiography"),
    (("CT",), re.compile(r" (?:TRAUMA|MAJOR TRAUMA|POLYTRAUMA) "), "whole-body"),
    (("CT",), re.compile(r" (?:PE|PES) "), "pulmonary-angiography"),
    (("CT",), re.compile(r" (?:CORONARY|CORONARIES) "), "coronary-angiography"),
    # a PET naming no part is the usual skull-base-to-thighs study ("FDG PET", "PSMA PET", "PET scan")
    (("PT",), re.compile(r" (?:PET|PETCT|FDG|PSMA) "), "whole-body"),
    # "MRI ?CES": cauda equina syndrome, the lumbosacral spine
    (("MR", "CT"), re.compile(r" CES "), "lumbar-spine"),
    # "XR OM": the occipitomental view of the facial bones
    (("XR",), re.compile(r" OM "), "face"),
    # "US DVT R", "US venous duplex LL": a deep vein thrombosis scan naming no limb is of the leg; LL the lower limb
    (("US",), re.compile(r" (?:DVT|LL|LLS) "), "lower-limb"),
    # "XR C/S", "MR L/S": the spine by its level (not on other modalities, where C/S is as often a caesarean section)
    (("XR", "CT", "MR"), re.compile(r" C S "), "cervical-spine"),
    (("XR", "CT", "MR"), re.compile(r" T S "), "thoracic-spine"),
    (("XR", "CT", "MR"), re.compile(r" L S "), "lumbar-spine"),
    # transvaginal, transabdominal, obstetric
    (("US",), re.compile(r" (?:TV|TA|TA TV|TA AND TV|TV TA|OBS) "), "pelvis"),
)
#: A CT of the chest for a pulmonary embolus ("CT chest ?PE", "CT thorax (PE)") is a CT pulmonary angiogram; only on
#: CT and the chest alone ("PE" on a chest radiograph or ultrasound is as often a pleural effusion)
_PE = re.compile(r" (?:PE|PES|PE PROTOCOL|PE STUDY) ")

# (pattern, region, plural: implies both sides); checked after spine and angiography phrases are taken out
_PARTS = (
    (r" (?:NECK OF FEMUR|NOF|FEMORAL NECK) ", "hip", False),
    # a frog-leg (lateral) view is of the hips, not of the leg
    (r" (?:FROG LEGS?(?: LATERALS?| VIEWS?)?|FROG LATERALS?) ", "hip", False),
    (r" (?:CHEST ABDOMEN AND PELVIS|CHEST ABDO PELVIS|CAP|C A P|CTCAP|NCAP|N CAP|TAP|T A P|CTTAP|NTAP|N TAP|"
     r"THORAX ABDOMEN AND PELVIS|THORAX ABDO PELVIS|(?:NECK|CHEST|THORAX) TO (?:PELVIS|"
     r"(?:MID |UPPER |PROXIMAL )?THIGHS?)) ", "chest-abdomen-pelvis", False),
    (r" (?:WBCT|WB CT) ", "whole-body", False),
    (r" (?:WHOLE BODY|TOTAL BODY|HALF BODY|SKELETAL SURVEY|BONE SCAN|SKULL BASE TO THIGHS?|EYES TO THIGHS?|"
     r"(?:SKULL BASE|BASE OF SKULL|VERTEX|HEAD) TO (?:MID |UPPER |PROXIMAL )?(?:THIGHS?|FEMURS?|PELVIS|TOES?)|"
     r"FULL BODY|ENTIRE BODY|MYELOMA SCREEN|PET CT|PETCT|PAN SCAN|PANSCAN|TRAUMA PAN SCAN|POLYTRAUMA|TRAUMA SERIES) ",
     "whole-body", False),
    (r" (?:HEAD|BRAIN|CTB|SKULL|CRANIAL|CRANIUM|PITUITARY|IAMS?|IACS?|INTERNAL AUDITORY MEATU\w*|STROKE|CEREBRAL|"
     r"POSTERIOR FOSSA|TEMPORAL BONES?|PETROUS|DATSCAN|DAT SCAN|DAT SPECT) ", "head", False),
    (r" (?:FACE|FACIAL BONES|FACIAL|SINUS|SINUSES|PARANASAL|PNS|ORBITS?|MANDIBLE|MAXILLA|MAXILLOFACIAL|MAX FAX|OPG|OPT|"
     r"ORTHOPANTOMO\w*|PANTOMO\w*|DPT|DENTAL PANORAMIC\w*|"
     r"DENTAL|TMJS?|EYES?|NASAL BONES?|ZYGOMA\w*|JAWS?|OM VIEWS?|OM 30|OMS|OCCIPITO MENTAL|OCCIPITOMENTAL) ",
     "face", False),
    (r" (?:NECK|THYROID|PARATHYROIDS?|LARYNX|PAROTIDS?|SALIVARY|SUBMANDIBULAR|PHARYNX|NASOPHARYN\w*|POST NASAL SPACE|"
     r"CAROTIDS?) ", "neck", False),
    (r" (?:CHEST|THORAX|THORACIC|LUNGS?|CXR|HRCT|HR CT|CMR|RIBS?|STERNUM|HEART|CARDIAC|MEDIASTIN\w*|PLEURA\w*|"
     r"OESOPHAG\w*|ESOPHAG\w*|(?:BARIUM|BA|CONTRAST) SWALLOW|ECHOCARDIO\w*|VQ|V Q|VENTILATION PERFUSION|"
     r"LUNG PERFUSION|MUGA|CALCIUM SCOR\w*|CACS|BABYGRAM|MYOCARDIAL\w*|MPI|MPS|MYOVIEW|Q SCAN) ",
     "chest", False),
    (r" (?:ABDOMEN|ABDO|ABD|ABDOMINAL|AXR|LIVER|HEPATIC|PANCREAS|PANCREATIC|RENAL|KIDNEYS?|SPLEEN|GALLBLADDER|"
     r"BILIARY|MRCP|ADRENALS?|APPENDIX|SMALL BOWEL|UPPER GI|AAA|RUQ|LUQ|PTC|PTHC|PERCUTANEOUS TRANSHEPATIC\w*|"
     r"CHOLANGIO\w*|ERCP|NEPHROSTOMY|NEPHROSTOGRAM|NEFRO|NEFROSTOMY|NEPHRO|STOMACH|GASTRIC|GASTROSTOMY|"
     r"GASTROJEJUNOSTOMY|BARIUM MEAL|BA MEAL|PYLORUS|PYLORIC|INTUSSUSCEPTION|RENOGRAM|MAG3|MAG 3|DMSA|HIDA|"
     r"MECKEL\w*) ", "abdomen", False),
    (r" (?:KUB|CTKUB|K U B|URINARY TRACT|UROGRAM|"
     r"CTU|CT UROGRAM|IVU|CT COLONOGRAPHY|COLONOGRAPHY|CTC|VIRTUAL COLONOSCOPY|CTAP|"
     # "USS A+P", "CT A&P": abdomen and pelvis (the "+" and "&" already read as "and"; a bare "A/P" is a view)
     r"A AND P|"
     r"ABDOMEN AND PELVIS|ABDO PELVIS|(?:BARIUM|BA|CONTRAST|WATER SOLUBLE) ENEMA|ENTEROGRAPHY|ENTEROCLYSIS|COLON|"
     r"PNEUMOCOLON) ",
     "abdomen-pelvis", False),
    (r" (?:PELVIS|PELVIC|PEL|PELV|GROINS?|INGUINAL|PROSTATE|BLADDER|UTERUS|OVARY|OVARIES|TRANSVAGINAL|RECTUM|RECTAL|"
     r"SACROILIAC|SI JOINTS?|SI JTS?|SIJS?|"
     r"SCROTUM|SCROTAL|TESTES|TESTIS|TESTICULAR|TESTICLES?|OBSTETRIC|OBSTETRICS|PREGNANCY|FETAL|DATING SCAN|NUCHAL|"
     r"GROWTH SCAN|ANOMALY SCAN|VIABILITY SCAN|TVUS|TVUSS|TVS|TAS|HSG|HYSTEROSALPINGO\w*|MCUG|"
     r"MICTURATING CYSTO\w*|CYSTOGRAM|URETHROGRAM) ", "pelvis", False),
    (r" (?:BREASTS) ", "breast", True),
    (r" (?:BREAST|MAMMO|MAMMOGRAM|MAMMOGRAPHY|TOMOSYNTHESIS|TOMO|DBT|AXILLA) ", "breast", False),
    (r" (?:MAMMOGRAMS) ", "breast", True),
    (r" (?:SHOULDERS) ", "shoulder", True),
    (r" (?:SHOULDER|CLAVICLE|SCAPULA|ACJ|AC JOINT|ACROMIOCLAVICULAR) ", "shoulder", False),
    (r" (?:HUMERUS|UPPER ARM) ", "humerus", False),
    (r" (?:ELBOWS) ", "elbow", True),
    (r" (?:ELBOW) ", "elbow", False),
    (r" (?:FOREARM|RADIUS AND ULNA|RADIUS|ULNA) ", "forearm", False),
    (r" (?:WRISTS) ", "wrist", True),
    (r" (?:WRIST|SCAPHOID) ", "wrist", False),
    (r" (?:HANDS) ", "hand", True),
    (r" (?:HAND|FINGERS?|THUMB|METACARPALS?) ", "hand", False),
    (r" (?:HIPS) ", "hip", True),
    (r" (?:HIP) ", "hip", False),
    (r" (?:FEMUR|THIGH) ", "femur", False),
    (r" (?:KNEES) ", "knee", True),
    (r" (?:KNEE|PATELLA) ", "knee", False),
    (r" (?:TIBIA AND FIBULA|TIB AND FIB|TIB FIB|TIBIA|FIBULA|LOWER LEG|CALF|SHIN) ", "lower-leg", False),
    (r" (?:ANKLES) ", "ankle", True),
    (r" (?:ANKLE|ACHILLES(?: TENDON)?) ", "ankle", False),
    (r" (?:FEET) ", "foot", True),
    (r" (?:FOOT|TOES?|CALCANEUM|CALCANEUS|HEEL|OS CALCIS|FOREFOOT|MIDFOOT|HINDFOOT|PLANTAR FASCIA|"
     r"METATARSALS?|HALLUX) ", "foot", False),
    (r" (?:UPPER LIMBS?|ARMS?|UPPER EXTREMIT\w*) ", "upper-limb", False),
    (r" (?:LOWER LIMBS?|LEGS?|LOWER EXTREMIT\w*) ", "lower-limb", False),
)
_PARTS_COMPILED = tuple((re.compile(p), region, plural) for p, region, plural in _PARTS)
_SPINE_COMPILED = tuple((re.compile(p), region) for p, region in _SPINE)
_ANGIO_SUB_COMPILED = tuple((re.compile(p), region) for p, region in _ANGIO_SUB)
_ANGIO_SUB_WEAK_COMPILED = tuple((re.compile(p), regions) for p, regions in _ANGIO_SUB_WEAK)

_MODALITY_WORDS = (
    (r" (?:PET|PETCT|FDG|PSMA|PT AND CT|POSITRON EMISSION TOMOGRAPHY) ", "PT"),
    (r" (?:NM|NUCLEAR|SCINTIGRAPHY|SCINTIGRAM|BONE SCAN|MAG3|DMSA|MIBG|DATSCAN|SPECT|VQ|V Q|MUGA|ISOTOPE|RENOGRAM|"
     r"MYOCARDIAL PERFUSION|RADIONUCLIDE|RADIOISOTOPE|HIDA|MYOVIEW|DAT SCAN) ", "NM"),
    (r" (?:MG|MAMMO|MAMMOGRAM|MAMMOGRAMS|MAMMOGRAPHY|TOMOSYNTHESIS|TOMO|DBT|BREAST SCREENING) ", "MG"),
    (r" (?:CT|CAT|CTB|CTPA|C T P A|CTA|CTCA|HRCT|CTKUB|CTC|CTU|CTAP|CTCAP|CTTAP|CTV|WBCT|NCCT|CECT|"
     r"VIRTUAL COLONOSCOPY|"
     r"(?:COMPUTED|COMPUTERISED|COMPUTERIZED)(?: AXIAL)? TOMOGRAPH\w*) ", "CT"),
    (r" (?:MR|MRI|MRA|MRV|MRCP|NMR|CMR|MAGNETIC RESONANCE) ", "MR"),
    (r" (?:US|USS|ULTRASOUND|SONOGRAPHY|ULTRASONOGRAPHY|ULTRASONOGRAM|SONOGRAM|DOPPLER|DUPLEX|ECHO|TRANSVAGINAL|"
     r"TVUS|TVUSS|TVS|TAS|DATING SCAN|NUCHAL|GROWTH SCAN|ANOMALY SCAN|VIABILITY SCAN) ",
     "US"),
    (r" (?:FLUORO|FLUOROSCOPY|BARIUM|VIDEOFLUOROSCOPY|CONTRAST SWALLOW|HSG|MCUG|SWALLOW|IMAGE INTENSIFIER|"
     r"BA (?:SWALLOW|MEAL|ENEMA)|(?:CONTRAST|WATER SOLUBLE) ENEMA|HYSTEROSALPINGO\w*|MICTURATING CYSTO\w*) ", "RF"),
    (r" (?:ANGIOGRAM|ANGIOPLASTY|EMBOLISATION|EMBOLIZATION|INTERVENTIONAL|NEPHROSTOMY|STENT) ", "XA"),
    (r" (?:DEXA|DXA|BONE DENSITY|BONE DENSITOMETRY|DUAL ENERGY X RAY ABSORPTIOMETRY) ", "BMD"),
    (r" (?:XR|X RAY|XRAY|CXR|AXR|PLAIN FILM|DX|CR|RADIOGRAPH\w*|OPG|OPT|ORTHOPANTOMO\w*|PANTOMO\w*|DPT|"
     r"DENTAL PANORAMIC\w*|SKELETAL SURVEY|BABYGRAM|IVU) ", "XR"),
)
_MODALITY_COMPILED = tuple((re.compile(p), m) for p, m in _MODALITY_WORDS)

_CONTRAST_BOTH = re.compile(r" (?:WWO|PRE AND POST(?: CONTRAST)?|PLAIN AND CONTRAST|NON CONTRAST AND CONTRAST) ")
_CONTRAST_NO = re.compile(r" (?:WO|WITHOUT(?: IV)?(?: CONTRAST)?|NON CONTRAST|NONCONTRAST|NC|UNENHANCED|NON ENHANCED|"
                          r"NO CONTRAST|PLAIN|NATIVE|NON CON|NONCON|NCCT) ")
_CONTRAST_YES = re.compile(r" (?:WITH (?:IV )?(?:CONTRAST|CON|IV)|W CONTRAST|W IV|CONTRAST|CONTRAST ENHANCED|ENHANCED|"
                           r"IV CON|C PLUS|PLUS C|POST CONTRAST|ARTERIAL PHASE|PORTAL VENOUS|PORTAL PHASE|"
                           r"TRIPLE PHASE|ARTHROGRAM|GADOLINIUM|GAD|BARIUM|BA SWALLOW|BA MEAL|BA ENEMA|CEUS|CTPA|CTA|"
                           r"CTCA|CECT|IVU|DYNAMIC) ")

_SIDE_BOTH = re.compile(r" (?:BILATERAL|BILAT|BIL|BOTH|LEFT AND RIGHT|RIGHT AND LEFT|L AND R|R AND L|LT AND RT|"
                        r"RT AND LT|L PLUS R|R PLUS L) ")
_SIDE_LEFT = re.compile(r" (?:L|LT|LFT|LEFT|LEFY|LETF|LHS) ")  # with the misspellings request forms carry
_SIDE_RIGHT = re.compile(r" (?:R|RT|RGT|RGHT|RIGHT|RIGTH|RIHGT|RHS) ")


def _remove(text: str, match: re.Match[str]) -> str:
    return text[:match.start()] + " " + " " * (match.end() - match.start() - 2) + " " + text[match.end():]


def _modality_from_text(text: str) -> str | None:
    found = [(m.start(), modality) for pattern, modality in _MODALITY_COMPILED if (m := pattern.search(text))]
    return min(found)[1] if found else None


def _contrast_from_text(text: str) -> bool | None:
    if _CONTRAST_BOTH.search(text):
        return True
    if _CONTRAST_NO.search(text):
        return False
    if _CONTRAST_YES.search(text):
        return True
    return None


#: Where a combined description starts its next examination ("CT head and CTA head and neck", "CT chest and CTPA").
_NEXT_EXAMINATION = re.compile(r" (?=(?:CT|CTA|CTPA|CTCA|MR|MRI|MRA) )")


def _regions_from_text(text: str) -> tuple[list[tuple[int, str]], bool]:
    """Regions named in ``text`` with their positions, and whether a plural implied both sides.

    A description naming several examinations is read one examination at a time, so that the head of "CT head and
    CTA head and neck" is read as the head and the vessels of its angiogram as the head-and-neck territory.
    """
    starts = [m.start() for m in _NEXT_EXAMINATION.finditer(text) if m.start() > 0]
    if not starts or not _ANGIO.search(text):
        return _regions_of_one(text)
    found: list[tuple[int, str]] = []
    plural = False
    for begin, end in zip([0, *starts], [*starts, len(text)], strict=True):
        segment = " " * begin + text[begin:end] + " "
        more, is_plural = _regions_of_one(segment)
        found += more
        plural = plural or is_plural
    if any(region == "angiography" for _, region in found):
        territories = {region for _, region in found if rg.region_group(region) == rg.ANGIOGRAPHY} - {"angiography"}
        if territories:  # "Angio^CTA_Carotid": the angiogram of the territory the description names elsewhere
            found = [(at, region) for at, region in found if region != "angiography"]
        elif any(rg.region_group(region) in (rg.HEAD, rg.NECK) for _, region in found):
            # a bare "CTA" beside a CT head or neck ("CT head + CTA + CTP", a stroke protocol) is the head-and-neck
            # territory, not every vascular territory
            found = [(at, "head-neck-angiography" if region == "angiography" else region) for at, region in found]
    return sorted(found), plural


def _only_wording(text: str, modality: str | None) -> list[tuple[int, str]]:
    """The region of a description that names none but the modality's own wording for one (``_ONLY_WORDING``)."""
    for modalities, pattern, region in _ONLY_WORDING:
        if modality in modalities and (match := pattern.search(text)) is not None:
            return [(match.start(), region)]
    return []


def _anatomy_words() -> dict[str, str]:
    """The single words of the region phrases (four letters or more), each with the region it reads as."""
    words: dict[str, str] = {}
    patterns = [(p, region) for p, region, _ in _PARTS] + list(_SPINE) + list(_ANGIO_SUB) \
        + [(p, regions[0]) for p, regions in _ANGIO_SUB_WEAK]
    for pattern, region in patterns:
        depth, alternative = 0, ""
        for char in pattern.strip().removeprefix("(?:").removesuffix(")") + "|":
            depth += {"(": 1, ")": -1}.get(char, 0)
            if char == "|" and depth == 0:
                if re.fullmatch(r"[A-Z]{4,}", alternative):  # a whole alternative of one plain word
                    words.setdefault(alternative, region)
                alternative = ""
            else:
                alternative += char
    return words


_ANATOMY_WORDS = _anatomy_words()
#: Words of request forms one edit away from an anatomical word that are words of their own
_NOT_MISSPELT = frozenset({"FACET", "FACETS", "ANGLE", "ANGLES", "HEARD", "HEADS", "SKILL", "LEMUR", "CHESS", "NECKS",
                           "SPINS", "THUMP", "WAIST", "KNEEL", "SINUS", "ORBIT", "PENAL", "FEMORA", "SUPINE",
                           "SPLINE", "SPLINT", "FACER", "LIVED", "LIVES", "HANDY", "FEETS", "GROWN"})


def _respelt(text: str) -> str | None:
    """``text`` with each misspelt anatomical word ("HEAAD", "ABDOMAN", "THROAX", "PELIVS") replaced by the one word
    of the region vocabulary it is a single edit (or transposition) away from; None when no word was replaced. A word
    of four letters is read only when two of its letters are swapped ("HAED", not "LONG" for "LUNG"); shorter words,
    words of their own (``_NOT_MISSPELT``) and words near two regions are left as they are."""
    from rapidfuzz.distance import OSA

    replaced = False
    words = text.split()
    for i, word in enumerate(words):
        if len(word) < 4 or not word.isalpha() or word in _ANATOMY_WORDS or word in _NOT_MISSPELT:
            continue
        near = [w for w in _ANATOMY_WORDS if abs(len(w) - len(word)) <= 1 and OSA.distance(w, word, score_cutoff=1) <= 1
                and (len(word) > 4 or sorted(w) == sorted(word))]  # four letters: only two of them swapped ("HAED")
        if len({_ANATOMY_WORDS[w] for w in near}) == 1:  # "KNEEE": KNEE or KNEES, the knee either way
            words[i] = min(near, key=len)  # the singular: a plural would say both sides
            replaced = True
    return f" {' '.join(words)} " if replaced else None


def _regions_of_one(text: str) -> tuple[list[tuple[int, str]], bool]:
    found: list[tuple[int, str]] = []
    plural = False
    angio = _ANGIO.search(text)
    if angio:
        # every territory the angiogram names ("CTA aorta and lower limb run-off" is the aorta and the periphery)
        territories = [region for pattern, region in _ANGIO_SUB_COMPILED if pattern.search(text)] \
            or next((list(regions) for pattern, regions in _ANGIO_SUB_WEAK_COMPILED if pattern.search(text)), []) \
            or ["angiography"]
        return [(angio.start(), region) for region in dict.fromkeys(territories)], False
    for pattern, region in _ALSO:
        if (match := pattern.search(text)) is not None:
            found.append((match.start() + 1, region))  # after the region the phrase is read as
    for pattern, region in _SPINE_COMPILED:
        while (match := pattern.search(text)) is not None:
            found.append((match.start(), region))
            text = _remove(text, match)
    for pattern, region, is_plural in _PARTS_COMPILED:
        while (match := pattern.search(text)) is not None:
            found.append((match.start(), region))
            plural = plural or is_plural
            text = _remove(text, match)
    return sorted(found), plural


def _combine(found: list[tuple[int, str]]) -> tuple[str | None, tuple[str, ...]]:
    """One body region for everything a description names (trunk parts combine; limb parts give the limb)."""
    names = list(dict.fromkeys(region for _, region in found))
    if not names:
        return None, ()
    if "whole-body" in names:
        return "whole-body", tuple(names)
    trunk_parts: set[str] = set()
    for name in names:
        if rg.region_group(name) == rg.CHEST_ABDOMEN_PELVIS:
            trunk_parts |= rg.REGIONS[name].parts
    if len(trunk_parts) > 1:
        combined = {frozenset({"chest", "abdomen"}): "chest-abdomen",
                    frozenset({"abdomen", "pelvis"}): "abdomen-pelvis"}.get(frozenset(trunk_parts),
                                                                            "chest-abdomen-pelvis")
        others = [n for n in names if rg.region_group(n) != rg.CHEST_ABDOMEN_PELVIS]
        return combined, (combined, *others)
    spine = [n for n in names if rg.region_group(n) == rg.SPINE]
    if len(spine) > 1:
        levels = [n for n in spine if n != "whole-spine"]
        if "whole-spine" in spine and len(levels) != 1 or len(levels) == 3:
            return "whole-spine", ("whole-spine", *[n for n in names if n not in spine])
        if len(levels) == 1:
            return levels[0], (levels[0], *[n for n in names if n not in spine])
        return names[0], tuple(names)  # two levels named: each of them
    limbs = [n for n in names if rg.region_group(n) == rg.LIMBS]
    if len(limbs) > 1 and len(names) == len(limbs):
        upper = {n for n in limbs if rg.REGIONS[n].parts <= rg.REGIONS["upper-limb"].parts}
        if len(upper) == len(limbs):
            return "upper-limb", tuple(names)
        if not upper:
            return "lower-limb", tuple(names)
    return names[0], tuple(names)


def _without_spine(text: str) -> str:
    """``text`` with its spine phrases blanked (same length): the L of "L SPINE" and of "L/S" is lumbar, not left."""
    for pattern, _ in _SPINE_COMPILED:
        while (match := pattern.search(text)) is not None:
            text = _remove(text, match)
    return _SLASHED_LEVEL.sub(lambda m: " " * len(m.group()), text)


_SLASHED_LEVEL = re.compile(r"(?<= )[CTL] S(?= )")


def _laterality_from_text(text: str, body_region: str | None, plural: bool) -> str | None:
    scrubbed = _without_spine(text)
    if _SIDE_BOTH.search(scrubbed):
        return rg.BOTH
    left, right = bool(_SIDE_LEFT.search(scrubbed)), bool(_SIDE_RIGHT.search(scrubbed))
    if left and right or (left or right) and plural:  # "hands and left foot": both hands, so both sides
        return rg.BOTH
    if left:
        return rg.LEFT
    if right:
        return rg.RIGHT
    if plural and rg.is_paired(body_region):
        return rg.BOTH
    if body_region is None or rg.is_paired(body_region):
        return None
    return rg.NONE


def _sides_by_region(text: str, found: list[tuple[int, str]]) -> tuple[tuple[str, str], ...]:
    """Each region's own side when the description states a side for each region named and they differ: the side
    word between the previous region and this one (else the one right after it, "WRIST LEFT")."""
    scrubbed = _without_spine(text)
    words = sorted([(m.start(), rg.BOTH) for m in _SIDE_BOTH.finditer(scrubbed)]
                   + [(m.start(), rg.LEFT) for m in _SIDE_LEFT.finditer(scrubbed)]
                   + [(m.start(), rg.RIGHT) for m in _SIDE_RIGHT.finditer(scrubbed)])
    positions = sorted(found)
    if len({region for _, region in positions}) < 2 or not words:
        return ()
    plural = {region for pattern, region, is_plural in _PARTS_COMPILED if is_plural and pattern.search(scrubbed)}
    sides: dict[str, str] = {}
    for i, (at, region) in enumerate(positions):
        if region in plural:  # "hands": both of them, whatever side another region has
            sides[region] = rg.BOTH
            continue
        before = positions[i - 1][0] if i else -1
        after = positions[i + 1][0] if i + 1 < len(positions) else len(scrubbed)
        side = next((w for pos, w in reversed(words) if before < pos < at), None) \
            or next((w for pos, w in words if at < pos < after), None)
        if side is None or sides.get(region, side) != side:
            return ()  # a region without a side of its own, or named twice with two sides: one side for all
        sides[region] = side
    return tuple(sides.items()) if len(set(sides.values())) > 1 else ()


@lru_cache(maxsize=8192)
def normalise_description(description: str | None, modality_hint: str | None = None) -> NormalisedProcedure:
    """Read a free-text study or procedure description.

    Parameters
    ----------
    description : str or None
        E.g. ``"CT HEAD W/O"``, ``"XR L WRIST 2V"``, ``"Mammogram bilateral"``.
    modality_hint : str, optional
        The modality from elsewhere (DICOM Modality, ORU diagnostic service); it wins over the text, which may be
        abbreviated or wrong.

    Returns
    -------
    NormalisedProcedure
        ``normalisation`` is ``"description"`` when a body region was read, ``"unknown"`` otherwise.

    Examples
    --------
    >>> p = normalise_description("XR L WRIST 2V")
    >>> (p.modality, p.body_region, p.laterality, p.contrast)
    ('XR', 'wrist', 'left', False)
    """
    hint = normalise_modality(modality_hint) if modality_hint else None
    if not description or not description.strip():
        return NormalisedProcedure(modality=hint)
    text = _clean(description)
    modality = hint or _modality_from_text(text)
    found, plural = _regions_from_text(text)
    if not found:
        found = _only_wording(text, modality)
    if not found and (respelt := _respelt(text)) is not None:
        text = respelt
        found, plural = _regions_from_text(text)
    if modality == "CT" and {r for _, r in found} == {"chest"} and _PE.search(text):
        found = [(at, "pulmonary-angiography") for at, _ in found]
    if modality in ("CT", "MR") and not any(rg.region_group(r) == rg.CHEST_ABDOMEN_PELVIS for _, r in found) \
            and (match := _ABDOMEN_PELVIS_CROSS_SECTIONAL.search(text)) is not None:
        found = sorted([*found, (match.start(), "abdomen-pelvis")])
    body_region, named = _combine(found)
    if body_region == "whole-body" and modality not in (None, "NM", "PT", "XR", "MR", "CT"):
        body_region = None
    contrast = _contrast_from_text(text)
    if contrast is None and modality in _NO_CONTRAST_BY_DEFAULT:
        contrast = False
    if contrast is None and body_region and rg.region_group(body_region) == rg.ANGIOGRAPHY and modality == "CT":
        contrast = True
    laterality = _laterality_from_text(text, body_region, plural)
    if body_region is None and modality == "MG":
        body_region = "breast"
        named = ("breast",)
        laterality = _laterality_from_text(text, body_region, plural)
    sides = _sides_by_region(text, found) if laterality == rg.BOTH and len(named) > 1 else ()
    return NormalisedProcedure(modality=modality, body_region=body_region, laterality=laterality, contrast=contrast,
                               normalisation=DESCRIPTION if body_region else UNKNOWN, regions=named, sides=sides)


def _code_regions(body_region: str, display: str | None, modality: str | None) -> tuple[str, ...]:
    """Every region a code names: its table region first, and the others its display names ("CT head and cervical
    spine") when the display reads as the same examination."""
    read = normalise_description(display, modality) if display else None
    if read is None or body_region not in read.regions:
        return (body_region,)
    return (body_region, *(r for r in read.regions if r != body_region))


def normalise_procedure(codes: Sequence[ProcedureCode] = (), description: str | None = None, *,
                        modality_hint: str | None = None, table: CodeTable | None = None) -> NormalisedProcedure:
    """Normalise an examination from its procedure codes (first found in ``table`` wins), else its description.

    Attributes a code table leaves empty are filled from the description; the modality hint (from DICOM) wins over
    both. The code's own display text is read when nothing else is known.

    Parameters
    ----------
    codes : sequence of ProcedureCode
        Procedure codes in order of preference (DICOM Procedure Code Sequence, OBR-4, FHIR procedureCode).
    description : str, optional
        The free-text description.
    modality_hint : str, optional
        The DICOM or HL7 modality.
    table : CodeTable, optional
        The code table; :func:`imaging.codetables.default_code_table` when omitted.
    """
    if table is None:
        from imaging.codetables import default_code_table

        table = default_code_table()
    from_text = normalise_description(description, modality_hint)
    for code in codes:
        entry = table.lookup(code.system, code.code)
        if entry is None or entry.body_region is None:
            continue
        laterality = entry.laterality if entry.laterality is not None else from_text.laterality
        if laterality is None and not rg.is_paired(entry.body_region):
            laterality = rg.NONE
        return NormalisedProcedure(
            modality=normalise_modality(modality_hint) or entry.modality or from_text.modality,
            body_region=entry.body_region, laterality=laterality,
            contrast=entry.contrast if entry.contrast is not None else from_text.contrast,
            normalisation=CODE, regions=_code_regions(entry.body_region, entry.display or code.display,
                                                      modality_hint or entry.modality), code=code)
    if from_text.normalisation == UNKNOWN:
        for code in codes:
            if code.display:
                from_display = normalise_description(code.display, modality_hint)
                if from_display.normalisation != UNKNOWN:
                    return replace(from_display, code=code)
    return replace(from_text, code=codes[0] if codes else None)
