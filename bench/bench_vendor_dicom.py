"""Survey of public vendor DICOM files: how many studies the index normalises to a modality and a body region.

``python -m bench vendor_dicom [--sources pydicom,openrem,...] [--files] [--json FILE]``
    Fetches every source of :mod:`bench.vendor_dicom` (pinned package versions from PyPI), ingests each file through
    ``imaging.ingest_dicom_file`` (what ``priorscan ingest`` calls) into a fresh SQLite store, then reads the studies
    back as ``priorscan export studies`` writes them. It prints one line per file (``--files``), one per study, and
    the share per modality of

    - studies normalised to modality **and** body region (``body_region`` set),
    - among them the *dose-bearing* studies (a dose summary from an RDSR or from image headers), the figure with a
      target (at least 90%).

    Nothing is tuned to these files: a study that stays unknown is listed with what it carried.

    A study every object of which (by SOP Instance UID) was already read under another study is a *copy* of that
    study, re-filed under another Study Instance UID (a test fixture derived from a real file), not another
    examination: it is listed, and the figures are printed both counting it and counting it once.

    A study the index itself recognises as not a patient's examination (a QA, physics or phantom test: the
    ``not_patient`` column of the export, :mod:`imaging.not_patient`, with the evidence it stored) is counted apart:
    the figure with the target is the share of *patient* dose-bearing studies normalised, as the product sees them,
    printed beside the share of all dose-bearing studies.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydicom import dcmread

from bench.vendor_dicom import SOURCES, files
from imaging import ingest_dicom_file
from imaging.queries import export_rows
from priorscan.audit import Agent
from priorscan.db import open_store, session_factory
from priorscan.trusts import default_trusts

TARGET = 0.90


def _header(path: Path) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = dcmread(path, stop_before_pixels=True, force=True)
        except Exception:  # noqa: BLE001 - any unreadable file is reported, not raised
            return {}
        sop = ds.get("SOPClassUID")
    return {"modality": str(ds.get("Modality", "") or ""), "sop_class": getattr(sop, "name", str(sop or "")),
            "study": str(ds.get("StudyInstanceUID", "") or ""), "sop": str(ds.get("SOPInstanceUID", "") or "")}


def survey(sources: list[str]) -> dict[str, Any]:
    """Ingest every file of ``sources`` into a fresh store and summarise what the index made of them."""
    per_file: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_store(f"sqlite:///{Path(tmp) / 'survey.db'}")
        sessions, trusts, agent = session_factory(engine), default_trusts(), Agent("feed", "bench-survey")
        started = time.perf_counter()
        for name in sources:
            for path in files(name):
                header = _header(path)
                outcome = ingest_dicom_file(sessions, trusts, path, agent=agent)
                per_file.append({"source": name, "file": path.name, "path": str(path), **header,
                                 "accepted": outcome.accepted, "reason": None if outcome.accepted else outcome.reason,
                                 "notes": (outcome.detail or {}).get("notes") if outcome.accepted else None})
        elapsed = time.perf_counter() - started
        with sessions() as session:
            studies = list(export_rows(session))
        engine.dispose()
    sources_of: dict[str, set[str]] = defaultdict(set)
    names_of: dict[str, list[str]] = defaultdict(list)
    for row in per_file:
        if row["accepted"] and row.get("study"):
            sources_of[row["study"]].add(row["source"])
            names_of[row["study"]].append(row["file"])
    copy_of = copies(per_file)
    per_study = [{**s, "qa": s["not_patient"], "copy_of": copy_of.get(s["study_instance_uid"]),
                  "sources": sorted(sources_of.get(s["study_instance_uid"], ())),
                  "files": len(names_of.get(s["study_instance_uid"], ())),
                  "first_file": min(names_of.get(s["study_instance_uid"], ["?"]))} for s in studies]
    return {"files": per_file, "studies": per_study, "seconds": elapsed}


def copies(per_file: list[dict[str, Any]]) -> dict[str, str]:
    """Studies every object of which (by SOP Instance UID) belongs to an earlier study: study UID -> that study's
    first file. Studies are taken in order of their first file's source and name, so the original comes first."""
    sops: dict[str, set[str]] = defaultdict(set)
    first: dict[str, tuple[str, str]] = {}
    for row in per_file:
        if row["accepted"] and row.get("study"):
            if row.get("sop"):
                sops[row["study"]].add(row["sop"])
            here = (row["source"], row["file"])
            first[row["study"]] = min(first.get(row["study"], here), here)
    found: dict[str, str] = {}
    seen: dict[str, str] = {}  # SOP Instance UID -> the study that first held it
    for study in sorted(first, key=lambda uid: first[uid]):
        owners = {seen.get(sop) for sop in sops[study]}
        if sops[study] and None not in owners and len(owners) == 1:
            found[study] = first[owners.pop() or ""][1]
        for sop in sops[study]:
            seen.setdefault(sop, study)
    return found


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100.0 * part / whole:.0f}%)" if whole else "0/0"


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """Counts per modality: studies, normalised, dose-bearing, dose-bearing normalised."""
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for study in result["studies"]:
        modality = study["modality"] or "(none)"
        normalised = bool(study["modality"] and study["body_region"])
        dose = bool(study["dose_source"])
        for key in (modality, "all"):
            table[key]["studies"] += 1
            table[key]["normalised"] += normalised
            table[key]["dose"] += dose
            table[key]["dose_normalised"] += dose and normalised
            table[key]["qa"] += bool(study["qa"])
            table[key]["dose_qa"] += dose and bool(study["qa"])
            table[key]["dose_qa_normalised"] += dose and normalised and bool(study["qa"])
            table[key]["dose_copies"] += dose and bool(study["copy_of"])
            table[key]["dose_copies_normalised"] += dose and normalised and bool(study["copy_of"])
            table[key]["dose_qa_copies"] += dose and bool(study["copy_of"]) and bool(study["qa"])
            table[key]["dose_qa_copies_normalised"] += dose and normalised and bool(study["copy_of"] and study["qa"])
    return {key: dict(counts) for key, counts in table.items()}


def dose_shares(counts: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Dose-bearing studies normalised, as (normalised, dose-bearing): patients' only (the index's ``not_patient``
    left out) and all studies, each with every copy counted once, then counting copies as studies."""
    c = Counter(counts)
    patients = (c["dose_normalised"] - c["dose_qa_normalised"], c["dose"] - c["dose_qa"])
    every = (c["dose_normalised"], c["dose"])
    patient_copies = (c["dose_copies_normalised"] - c["dose_qa_copies_normalised"],
                      c["dose_copies"] - c["dose_qa_copies"])
    return {
        "patient studies (target), each copy once": (patients[0] - patient_copies[0],
                                                     patients[1] - patient_copies[1]),
        "all studies (QA/physics tests too), each copy once": (every[0] - c["dose_copies_normalised"],
                                                                every[1] - c["dose_copies"]),
        "patient studies, copies counted": patients,
        "all studies, copies counted": every,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench vendor_dicom", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", default=",".join(s.name for s in SOURCES))
    parser.add_argument("--files", action="store_true", help="one line per file as well")
    parser.add_argument("--json", type=Path, help="write the whole survey as JSON")
    args = parser.parse_args(argv)
    result = survey([s for s in args.sources.split(",") if s])
    if args.files:
        print("source\tfile\tmodality\tSOP class\taccepted\tnotes")
        for row in result["files"]:
            print(f"{row['source']}\t{row['file']}\t{row.get('modality', '')}\t{row.get('sop_class', '')}\t"
                  f"{'yes' if row['accepted'] else 'no: ' + str(row['reason'])}\t{'; '.join(row['notes'] or [])}")
        print()
    print("study (first file)\tsources\tfiles\tmodality\tbody_region\tlaterality\tnormalisation\tdose_source\t"
          "dlp_total_mgycm\tdap_total_gym2\teffective_dose_msv")
    for study in sorted(result["studies"], key=lambda s: (s["modality"], s["body_region"], s["first_file"])):
        print(f"{study['first_file']}\t{','.join(study['sources'])}\t{study['files']}\t"
              f"{study['modality'] or '-'}\t{study['body_region'] or '-'}\t{study['laterality'] or '-'}\t"
              f"{study['normalisation'] or '-'}\t{study['dose_source'] or '-'}\t{study['dlp_total_mgycm']}\t"
              f"{study['dap_total_gym2']}\t{study['effective_dose_msv']}")
    counts = summary(result)
    print("\nmodality\tstudies\tnormalised (modality + region)\tdose-bearing\tdose-bearing normalised")
    for key in sorted(counts, key=lambda k: (k == "all", k)):
        c = counts[key]
        print(f"{key}\t{c['studies']}\t{_share(c['normalised'], c['studies'])}\t{c['dose']}\t"
              f"{_share(c['dose_normalised'], c['dose'])}")
    rejected = sum(1 for row in result["files"] if not row["accepted"])
    everything = counts.get("all", {})
    qa_studies = [study for study in result["studies"] if study["qa"]]
    print(f"\nstudies the index recognises as not a patient's examination (QA, physics, phantom test): "
          f"{len(qa_studies)}")
    for study in sorted(qa_studies, key=lambda s: s["first_file"]):
        print(f"  {study['first_file']}\t{study['modality'] or '-'}\t{study['body_region'] or '-'}\t"
              f"{'dose-bearing' if study['dose_source'] else 'no dose'}\t{study['qa'][:160]}")
    copied = [study for study in result["studies"] if study["copy_of"]]
    print(f"\nstudies that are copies of another (every object's SOP Instance UID read in another study): "
          f"{len(copied)}")
    for study in sorted(copied, key=lambda s: s["first_file"]):
        print(f"  {study['first_file']}\tcopy of {study['copy_of']}\t"
              f"{'dose-bearing' if study['dose_source'] else 'no dose'}")
    print(f"\n{len(result['files'])} files ({rejected} rejected as unreadable or without a study), "
          f"{len(result['studies'])} studies, ingested in {result['seconds']:.1f} s")
    print(f"dose-bearing studies normalised to modality and body region (target {100 * TARGET:.0f}% of patient "
          f"studies):")
    for label, (done, whole) in dose_shares(everything).items():
        print(f"  {label}: {_share(done, whole)}" + (f" = {100 * done / whole:.1f}%" if whole else ""))
    if args.json:
        args.json.write_text(json.dumps({"summary": counts, **result}, indent=1, default=str))
    return 0
