"""api.feeds.ingest: phases (identity, imaging, orders), counts with grouped reasons, exit status; nothing dropped."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
from api_factories import (
    ADT,
    ORM,
    ORU,
    dicom_json_dataset,
    fhir_imaging_study,
    fhir_patient,
    fhir_service_request,
    hl7,
    write_dicom,
)
from sqlalchemy import select

import api.feeds.ingest
from api.context import AppContext
from api.feeds.ingest import IngestReport, ingest_paths
from priorscan.errors import HL7Error
from priorscan.outcome import ItemOutcome
from priorscan.tables import DeadLetter


class RecordingHandlers:
    """Fake handlers: record every call in order; reject what is marked to be rejected."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []  # (kind, detail, source)

    def hl7_message(self, context: AppContext, raw: str, *, source: str) -> ItemOutcome:
        fields = raw.split("\r")[0].split("|")
        kind = fields[8].replace("^ADT_A01", "")
        self.calls.append((kind, fields[9], source))
        if "REJECT-ME" in raw:
            return ItemOutcome.rejected(kind, "PID-3 names no known trust", "hl7.trust")
        if "RAISE-HL7" in raw:
            raise HL7Error("message could not be parsed", code="hl7.parse")
        if "CRASH" in raw:
            raise RuntimeError("bug quoting TESTER^ALEX")
        return ItemOutcome.ok(kind)

    def fhir_resource(self, context: AppContext, resource: dict[str, Any], *, source: str) -> list[ItemOutcome]:
        entries = [e["resource"] for e in resource.get("entry", [])] if resource["resourceType"] == "Bundle" else [
            resource]
        self.calls.append((resource["resourceType"], ",".join(r["resourceType"] for r in entries), source))
        return [ItemOutcome.ok(r["resourceType"]) for r in entries]

    def dicom_file(self, context: AppContext, path: Path) -> ItemOutcome:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a real adapter refuses what pydicom only warns about
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            uid = str(ds.StudyInstanceUID)
        self.calls.append(("DICOM", uid, path.name))
        return ItemOutcome.ok("DICOM")

    def dicom_json(self, context: AppContext, dataset: dict[str, Any], *, source: str) -> ItemOutcome:
        self.calls.append(("DICOM JSON", dataset["0020000D"]["Value"][0], source))
        return ItemOutcome.ok("DICOM JSON")


@pytest.fixture
def handlers() -> RecordingHandlers:
    return RecordingHandlers()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _mixed_folder(root: Path) -> Path:
    """Files named so that sorted order is the wrong order: orders first, identity last."""
    _write(root / "a-orders.hl7", hl7(ORM, "O1") + "\r")
    write_dicom(root / "b-images" / "IM0001", study_uid="2.25.100")  # no extension
    write_dicom(root / "b-images" / "raw", study_uid="2.25.101", preamble=False)
    _write(root / "c-qido.json", json.dumps([dicom_json_dataset("2.25.102")]))
    _write(root / "d-mixed.txt", "\n".join([hl7(ORM, "O2"), hl7(ORU, "R1"), hl7(ADT, "A2")]).replace("\r", "\n"))
    _write(root / "e-resources.ndjson", "\n".join(json.dumps(r) for r in [
        fhir_service_request(), fhir_imaging_study(), fhir_patient()]) + "\n")
    _write(root / "f-patients.json", json.dumps({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": fhir_patient("P1")}, {"resource": fhir_patient("P2")}]}, indent=2))
    _write(root / "g-adt.hl7", "\x0b" + hl7(ADT, "A1") + "\r\x1c\r")
    return root


def test_identity_before_imaging_before_orders(tmp_path: Path, context: AppContext,
                                               handlers: RecordingHandlers) -> None:
    report = ingest_paths(context, [_mixed_folder(tmp_path / "in")], handlers=handlers)
    kinds = [kind for kind, _, _ in handlers.calls]
    identity = {"ADT^A04", "Patient", "Bundle"}
    imaging = {"DICOM", "DICOM JSON", "ORU^R01", "ImagingStudy"}
    orders = {"ORM^O01", "ServiceRequest"}
    phase_of = [1 if k in identity else 2 if k in imaging else 3 if k in orders else 0 for k in kinds]
    assert 0 not in phase_of and phase_of == sorted(phase_of), kinds
    assert sorted(kinds) == sorted(["ADT^A04", "ADT^A04", "Patient", "Bundle", "DICOM", "DICOM", "DICOM JSON",
                                    "ORU^R01", "ImagingStudy", "ORM^O01", "ORM^O01", "ServiceRequest"])
    assert report.rejected_total == 0 and report.exit_code == 0
    assert report.accepted == {"ADT^A04": 2, "Patient": 3, "DICOM": 2, "DICOM JSON": 1, "ORU^R01": 1,
                               "ImagingStudy": 1, "ORM^O01": 2, "ServiceRequest": 1}
    assert report.files == {"HL7 v2": 3, "DICOM": 2, "DICOM JSON": 1, "FHIR NDJSON": 1, "FHIR JSON": 1}


def test_in_file_order_is_kept_within_a_phase(tmp_path: Path, context: AppContext,
                                              handlers: RecordingHandlers) -> None:
    path = _write(tmp_path / "feed.hl7", "\r".join(hl7(ADT, f"A{i}") for i in range(5)))
    ingest_paths(context, [path], handlers=handlers)
    assert [control for _, control, _ in handlers.calls] == [f"A{i}" for i in range(5)]
    assert [source.rsplit("#", 1)[1] for _, _, source in handlers.calls] == ["1", "2", "3", "4", "5"]


def test_rejections_are_counted_and_grouped_by_reason(tmp_path: Path, context: AppContext,
                                                      handlers: RecordingHandlers) -> None:
    feed = "\r".join([hl7(ADT, "A1"), hl7(ADT, "A2").replace("TESTER", "REJECT-ME"),
                      hl7(ADT, "A3").replace("TESTER", "REJECT-ME"), hl7(ADT, "A4").replace("TESTER", "RAISE-HL7")])
    _write(tmp_path / "in" / "feed.hl7", feed)
    _write(tmp_path / "in" / "notes.txt", "call the ward about bed 4\n")
    _write(tmp_path / "in" / "empty.hl7", "")
    _write(tmp_path / "in" / "broken.ndjson", json.dumps(fhir_patient()) + "\n{oops\n")
    (tmp_path / "in" / "corrupt.dcm").write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)) * 2)
    write_dicom(tmp_path / "in" / "good.dcm")
    _write(tmp_path / "in" / ".DS_Store", "junk")
    report = ingest_paths(context, [tmp_path / "in", tmp_path / "missing"], handlers=handlers)

    assert report.accepted == {"ADT^A04": 1, "Patient": 1, "DICOM": 1}
    assert report.rejected["ADT^A04"] == {("hl7.trust", "PID-3 names no known trust"): 2,
                                          ("hl7.parse", "message could not be parsed"): 1}
    assert sum(report.rejected["file"].values()) == 2  # notes.txt, empty.hl7
    assert report.rejected["FHIR"] == {("fhir.json", "line is not usable JSON: not valid JSON"): 1}
    (((code, reason), n),) = report.rejected["DICOM"].items()
    assert code == "dicom.corrupt" and "could not be read" in reason and n == 1
    assert report.rejected["path"] == {("input.path", "no such file or folder"): 1}
    assert report.skipped_hidden == 1
    assert report.exit_code == 1

    text = report.render()
    assert "2 × PID-3 names no known trust [hl7.trust]" in text
    assert "notes.txt" in text and "corrupt.dcm" in text and "empty file" in text
    assert "skipped 1 hidden file" in text


def test_a_crashing_handler_is_reported_and_the_item_dead_lettered(tmp_path: Path, context: AppContext,
                                                                   handlers: RecordingHandlers) -> None:
    path = _write(tmp_path / "feed.hl7", "\r".join([hl7(ADT, "A1").replace("TESTER", "CRASH"), hl7(ADT, "A2")]))
    report = ingest_paths(context, [path], handlers=handlers)
    assert report.accepted == {"ADT^A04": 1}  # the next message still went through
    assert report.rejected["ADT^A04"] == {("internal", "internal error while applying (RuntimeError)"): 1}
    assert "TESTER" not in report.render()
    with context.sessions() as session:
        (letter,) = session.scalars(select(DeadLetter))
    assert (letter.channel, letter.content_type, letter.error_code) == ("ingest", "hl7v2", "internal")
    assert letter.raw.startswith("MSH|") and letter.source.endswith("feed.hl7#1")


def test_text_before_the_first_message_is_reported(tmp_path: Path, context: AppContext,
                                                   handlers: RecordingHandlers) -> None:
    path = _write(tmp_path / "feed.hl7", "FHS|^~\\&|PAS\rstray line\r" + hl7(ADT, "A1"))
    report = ingest_paths(context, [path], handlers=handlers)
    assert report.accepted == {"ADT^A04": 1}
    assert report.rejected["HL7"] == {("hl7.no-msh", "text outside any HL7 message (before the first MSH "
                                                     "segment)"): 1}


def test_an_empty_bundle_is_reported(tmp_path: Path, context: AppContext) -> None:
    class NoOutcomes(RecordingHandlers):
        def fhir_resource(self, context: AppContext, resource: dict[str, Any], *, source: str) -> list[ItemOutcome]:
            return []

    path = _write(tmp_path / "b.json", json.dumps({"resourceType": "Bundle", "type": "collection", "entry": []}))
    report = ingest_paths(context, [path], handlers=NoOutcomes())
    assert report.rejected_total == 1 and report.exit_code == 1


# --- the command ----------------------------------------------------------------------------------------------------

@pytest.fixture
def fake_default_handlers(monkeypatch: pytest.MonkeyPatch, handlers: RecordingHandlers) -> RecordingHandlers:
    monkeypatch.setattr(api.feeds.ingest, "DEFAULT_HANDLERS", handlers)
    return handlers


def test_command_exits_0_when_nothing_is_rejected(tmp_path: Path, sqlite_url: str,
                                                  run_cli: Callable[..., tuple[int, str, str]],
                                                  fake_default_handlers: RecordingHandlers) -> None:
    folder = _mixed_folder(tmp_path / "in")
    status, out, err = run_cli("--db", sqlite_url, "ingest", str(folder), "--no-progress")
    assert status == 0, out + err
    assert "13 item(s) accepted, 0 rejected" in out
    assert "ORM^O01" in out and "rejected:" not in out
    assert "it/s" not in err  # no progress bar


def test_command_exits_1_when_something_is_rejected(tmp_path: Path, sqlite_url: str,
                                                    run_cli: Callable[..., tuple[int, str, str]],
                                                    fake_default_handlers: RecordingHandlers) -> None:
    good = _write(tmp_path / "adt.hl7", hl7(ADT, "A1"))
    unknown = _write(tmp_path / "readme.md", "# not a feed\n")
    status, out, _ = run_cli("--db", sqlite_url, "ingest", str(good), str(unknown))
    assert status == 1
    assert "1 item(s) accepted, 1 rejected" in out and "readme.md" in out and "not a recognised format" in out


def test_report_renders_without_items() -> None:
    report = IngestReport()
    assert report.exit_code == 0 and "0 item(s) accepted, 0 rejected" in report.render()
