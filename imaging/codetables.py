"""Procedure code tables: a loader for NICIP, SNOMED CT and LOINC/RSNA Playbook style CSV files, and the small
curated map shipped with priorscan.

NICIP is licensed through NHS TRUD and the Playbook through LOINC, so priorscan ships only a loader and a small
curated map (``imaging/data/procedure_map.csv``); a trust points :func:`load_code_table` at its own copy.

Accepted layouts (column names are matched loosely: case, spaces and punctuation ignored):

- *one row per code*: a code column (``code``, ``NICIP Code``, ``conceptId``, ``LOINC_NUM`` ...), a text column
  (``display``, ``NICIP Short Name``, ``term``, ``FSN``, ``LongCommonName`` ...), optionally ``system`` and any of
  ``modality``, ``body_region``, ``laterality``, ``contrast``. Attributes left empty are read from the text;
- *one row per part* (the LOINC/RSNA Radiology Playbook): ``LoincNumber``, ``LongCommonName``, ``PartTypeName``,
  ``PartName``; the modality, region and laterality parts are gathered per code.

A row whose region cannot be read is kept (so the code is known) but normalises to ``unknown``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from imaging import regions as rg
from imaging.procedures import normalise_description, normalise_modality
from priorscan.errors import ConfigurationError

CURATED_MAP = Path(__file__).parent / "data" / "procedure_map.csv"

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
NICIP = "nicip"

_SYSTEM_ALIASES = {
    "sct": SNOMED, "snomed": SNOMED, "snomedct": SNOMED, "snomed-ct": SNOMED, "snm3": SNOMED, SNOMED: SNOMED,
    "2.16.840.1.113883.6.96": SNOMED, "urn:oid:2.16.840.1.113883.6.96": SNOMED,
    "ln": LOINC, "loinc": LOINC, LOINC: LOINC, "2.16.840.1.113883.6.1": LOINC, "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "nicip": NICIP, "nicip code": NICIP,
}

_CODE_COLUMNS = {"code", "codevalue", "nicipcode", "nicip", "conceptid", "snomedctconceptid", "snomedctid",
                 "sctid", "loincnum", "loinc", "loincnumber", "loinccode", "procedurecode"}
_TEXT_COLUMNS = {"display", "description", "nicipshortname", "nicipdescription", "shortname", "term", "fsn",
                 "preferredterm", "longcommonname", "longname", "codemeaning", "name", "snomedctfsn",
                 "snomedctdescription"}


def canonical_system(system: str | None) -> str:
    """One name per code system (``SCT``, ``SNM3``, ``http://snomed.info/sct`` are all SNOMED CT)."""
    if not system:
        return ""
    key = system.strip()
    lowered = key.lower()
    if "nicip" in lowered:
        return NICIP
    return _SYSTEM_ALIASES.get(lowered, key)


_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+$")
#: Where a code system has no URI of its own (a trust's local RIS codes, NICIP): a URN under priorscan's namespace.
LOCAL_SYSTEM_BASE = "urn:priorscan:code-system:"


def fhir_code_system(system: str | None) -> str:
    """``system`` as FHIR ``Coding.system`` wants it, an absolute URI: SNOMED CT and LOINC by their URIs, an OID as
    ``urn:oid:``, a URI unchanged, any other name (``LOCAL``, a RIS's own, ``nicip``) as a URN of its own
    (``urn:priorscan:code-system:local``); no system at all: ``urn:priorscan:code-system:local``."""
    canonical = canonical_system(system)
    if not canonical:
        return LOCAL_SYSTEM_BASE + "local"
    if _OID.match(canonical):
        return f"urn:oid:{canonical}"
    if _URI_SCHEME.match(canonical) and (canonical.startswith(("http://", "https://", "urn:"))):
        return canonical
    name = re.sub(r"[^a-z0-9.-]+", "-", canonical.lower()).strip("-") or "local"
    return LOCAL_SYSTEM_BASE + name


@dataclass(frozen=True)
class CodeEntry:
    """What one procedure code means, in the vocabulary of :mod:`imaging.regions`."""

    system: str
    code: str
    display: str | None
    modality: str | None
    body_region: str | None
    laterality: str | None
    contrast: bool | None


@dataclass
class CodeTable:
    """Procedure codes by ``(system, code)``; a code looked up without a system is found when it is unambiguous."""

    entries: dict[tuple[str, str], CodeEntry] = field(default_factory=dict)
    _by_code: dict[str, list[CodeEntry]] = field(default_factory=dict, repr=False)

    def add(self, entry: CodeEntry) -> None:
        key = (entry.system, entry.code.upper())
        previous = self.entries.get(key)
        if previous is not None:
            self._by_code[key[1]].remove(previous)
        self.entries[key] = entry
        self._by_code.setdefault(key[1], []).append(entry)

    def extend(self, entries: Iterable[CodeEntry]) -> CodeTable:
        for entry in entries:
            self.add(entry)
        return self

    def lookup(self, system: str | None, code: str | None) -> CodeEntry | None:
        """The entry for ``code`` in ``system``; without a known system, the only entry with that code."""
        if not code:
            return None
        value = code.strip().upper()
        entry = self.entries.get((canonical_system(system), value))
        if entry is not None:
            return entry
        candidates = self._by_code.get(value, [])
        return candidates[0] if len(candidates) == 1 else None

    def __len__(self) -> int:
        return len(self.entries)


def _column_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _contrast(text: str | None) -> bool | None:
    value = (text or "").strip().lower()
    if value in ("true", "yes", "y", "1", "with", "w"):
        return True
    if value in ("false", "no", "n", "0", "without", "wo"):
        return False
    return None


_NICIP_MODALITY = {"C": "CT", "M": "MR", "U": "US", "X": "XR", "N": "NM", "P": "PT", "F": "RF"}


def entry_from_text(system: str, code: str, display: str | None, *, modality: str | None = None,
                    body_region: str | None = None, laterality: str | None = None,
                    contrast: bool | None = None) -> CodeEntry:
    """A code entry whose empty attributes are read from its display text."""
    system = canonical_system(system)
    hint = modality
    if hint is None and system == NICIP and code:
        hint = _NICIP_MODALITY.get(code.strip()[:1].upper())
    read = normalise_description(display, hint)
    region = body_region if body_region in rg.REGIONS else read.body_region
    side = rg.normalise_laterality(laterality) if laterality else None
    if side is None and region == read.body_region:
        side = read.laterality
    return CodeEntry(system, code.strip(), display, normalise_modality(hint) or read.modality, region, side,
                     contrast if contrast is not None else read.contrast)


def _rows_per_code(rows: list[dict[str, str]], default_system: str | None, path: Path) -> list[CodeEntry]:
    if not rows:
        return []
    columns = {_column_key(name): name for name in rows[0]}
    code_col = next((columns[k] for k in columns if k in _CODE_COLUMNS), None)
    text_col = next((columns[k] for k in columns if k in _TEXT_COLUMNS), None)
    if code_col is None:
        raise ConfigurationError(f"{path.name}: no code column (code, NICIP Code, conceptId, LOINC_NUM ...)")
    if default_system is None and "system" not in columns:
        key = _column_key(code_col)
        default_system = NICIP if "nicip" in key else LOINC if "loinc" in key else SNOMED if (
            "concept" in key or "sct" in key or "snomed" in key) else None
    entries = []
    for row in rows:
        code = (row.get(code_col) or "").strip()
        if not code:
            continue
        system = (row.get(columns["system"]) if "system" in columns else None) or default_system or ""
        entries.append(entry_from_text(
            system, code, (row.get(text_col) or "").strip() or None if text_col else None,
            modality=(row.get(columns["modality"]) or None) if "modality" in columns else None,
            body_region=(row.get(columns["bodyregion"]) or None) if "bodyregion" in columns else None,
            laterality=(row.get(columns["laterality"]) or None) if "laterality" in columns else None,
            contrast=_contrast(row.get(columns["contrast"])) if "contrast" in columns else None))
    return entries


def _rows_per_part(rows: list[dict[str, str]], path: Path) -> list[CodeEntry]:
    columns = {_column_key(name): name for name in rows[0]}
    try:
        code_col, name_col = columns["loincnumber"], columns["longcommonname"]
        type_col, part_col = columns["parttypename"], columns["partname"]
    except KeyError as exc:
        raise ConfigurationError(f"{path.name}: a Playbook file needs LoincNumber, LongCommonName, PartTypeName and "
                                 "PartName columns") from exc
    gathered: dict[str, dict[str, str]] = {}
    for row in rows:
        code = (row.get(code_col) or "").strip()
        if not code:
            continue
        parts = gathered.setdefault(code, {"name": (row.get(name_col) or "").strip()})
        part_type = (row.get(type_col) or "").lower()
        part = (row.get(part_col) or "").strip()
        if "modality" in part_type and "subtype" not in part_type:
            parts.setdefault("modality", part)
        elif "laterality" in part_type:
            parts.setdefault("laterality", part)
        elif "imaging focus" in part_type or "region imaged" in part_type:
            parts["anatomy"] = f"{parts.get('anatomy', '')} {part}".strip()
    entries = []
    for code, parts in gathered.items():
        text = " ".join(filter(None, [parts.get("name"), parts.get("anatomy")]))
        entries.append(entry_from_text(LOINC, code, text, modality=parts.get("modality") or None,
                                       laterality=parts.get("laterality")))
    return entries


def load_code_table(path: Path | str, *, system: str | None = None) -> CodeTable:
    """Load a procedure code table from CSV (one row per code, or the Playbook's one row per part).

    Parameters
    ----------
    path : path
        The CSV file (UTF-8, with a header row).
    system : str, optional
        The code system of every row when the file has no ``system`` column (``NICIP``, ``SCT``, ``LN`` or a URI);
        guessed from the code column's name otherwise.

    Returns
    -------
    CodeTable
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            sample = handle.read(4096)
            handle.seek(0)
            dialect = csv.Sniffer().sniff(sample, delimiters=",\t|") if sample else csv.excel
            rows = list(csv.DictReader(handle, dialect=dialect))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read code table {path.name}") from exc
    if rows and "parttypename" in {_column_key(k) for k in rows[0]}:
        return CodeTable().extend(_rows_per_part(rows, path))
    return CodeTable().extend(_rows_per_code(rows, system, path))


@lru_cache(maxsize=1)
def default_code_table() -> CodeTable:
    """The curated map shipped with priorscan."""
    return load_code_table(CURATED_MAP)
