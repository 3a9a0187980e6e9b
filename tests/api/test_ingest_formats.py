"""api.feeds.ingest_formats: telling formats by content, and splitting files into items."""

from __future__ import annotations

import json
from pathlib import Path

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

from api.feeds.ingest_formats import (
    FileFormat,
    Phase,
    detect,
    dicom_json_items,
    fhir_json_items,
    hl7_messages,
    ndjson_items,
)

MESSAGES = [hl7(ADT, "A1"), hl7(ORU, "R1"), hl7(ORM, "O1")]


def _hl7_file(path: Path, segment_end: str, framed: bool = False, between: str = "") -> Path:
    parts = []
    for message in MESSAGES:
        text = message.replace("\r", segment_end) + segment_end
        parts.append(f"\x0b{text}\x1c\r" if framed else text)
    path.write_bytes(between.join(parts).encode())
    return path


@pytest.mark.parametrize(("name", "segment_end", "framed", "between"), [
    ("cr.hl7", "\r", False, ""),
    ("lf.txt", "\n", False, ""),
    ("crlf.hl7", "\r\n", False, ""),
    ("blank-lines-between", "\n", False, "\n\n"),
    ("mllp-framed.bin", "\r", True, ""),
    ("mllp-framed-lf", "\n", True, "\n"),
])
def test_hl7_files_in_every_segment_style_split_into_messages(tmp_path: Path, name: str, segment_end: str,
                                                              framed: bool, between: str) -> None:
    path = _hl7_file(tmp_path / name, segment_end, framed, between)
    assert detect(path).format is FileFormat.HL7V2
    messages = list(hl7_messages(path))
    assert [m.text for m in messages] == MESSAGES  # CR-joined segments, framing and blank lines gone
    assert [m.message_type for m in messages] == ["ADT", "ORU", "ORM"]
    assert [m.phase for m in messages] == [Phase.IDENTITY, Phase.IMAGING, Phase.ORDERS]
    assert [m.position for m in messages] == [1, 2, 3]


def test_hl7_batch_envelope_and_bom_are_understood(tmp_path: Path) -> None:
    path = tmp_path / "batch"
    body = "\r".join(MESSAGES[:2])
    path.write_bytes(("\ufeffFHS|^~\\&|PAS|RTK\rBHS|^~\\&|PAS|RTK\r" + body + "\rBTS|2\rFTS|1\r").encode())
    assert detect(path).format is FileFormat.HL7V2
    assert [m.text for m in hl7_messages(path)] == MESSAGES[:2]


def test_hl7_file_in_windows_1252_is_read(tmp_path: Path) -> None:
    path = tmp_path / "latin.hl7"
    path.write_bytes(MESSAGES[0].replace("TESTER", "TESTÉR").encode("cp1252"))
    (message,) = hl7_messages(path)
    assert "TESTÉR" in message.text


def test_large_hl7_file_streams_across_chunk_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "many.hl7"
    path.write_text("".join(hl7(ADT, str(i)).replace("\r", "\r\n") + "\r\n" for i in range(2000)))
    messages = list(hl7_messages(path))
    assert len(messages) == 2000 and all(m.text.count("\r") == 2 for m in messages)
    assert messages[-1].text.split("\r")[0].split("|")[9] == "1999"


@pytest.mark.parametrize(("content", "expected", "phases"), [
    (json.dumps(fhir_patient(), indent=2), FileFormat.FHIR_JSON, (Phase.IDENTITY,)),
    (json.dumps(fhir_patient()), FileFormat.FHIR_JSON, (Phase.IDENTITY,)),  # one line, no newline
    (json.dumps(fhir_service_request(), indent=1), FileFormat.FHIR_JSON, (Phase.ORDERS,)),
    (json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": fhir_patient()}, {"resource": fhir_imaging_study()}]}, indent=2),
     FileFormat.FHIR_JSON, (Phase.IMAGING,)),  # a Bundle goes whole, in the phase of its latest content
    (json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": fhir_patient("A1")}, {"resource": fhir_patient("A2")},
        {"resource": {"resourceType": "Organization", "name": "x"}}]}),
     FileFormat.FHIR_JSON, (Phase.IDENTITY,)),  # other resource types do not delay identity
    ("\n".join(json.dumps(r) for r in [fhir_patient(), fhir_service_request()]) + "\n",
     FileFormat.FHIR_NDJSON, (Phase.IDENTITY, Phase.IMAGING, Phase.ORDERS)),
    (json.dumps([fhir_patient(), fhir_patient("B")], indent=2), FileFormat.FHIR_JSON, (Phase.IDENTITY,)),
    (json.dumps([dicom_json_dataset(), dicom_json_dataset("2.25.78")], indent=2), FileFormat.DICOM_JSON,
     (Phase.IMAGING,)),
    (json.dumps([dicom_json_dataset()]), FileFormat.DICOM_JSON, (Phase.IMAGING,)),
    (json.dumps(dicom_json_dataset()), FileFormat.DICOM_JSON, (Phase.IMAGING,)),
    ('{"name": "a config file", "debug": true}', FileFormat.UNKNOWN, ()),
    ("patient_id,nhs_number\n1,9990001234\n", FileFormat.UNKNOWN, ()),
    ("   \n\n", FileFormat.EMPTY, ()),
    ("", FileFormat.EMPTY, ()),
])
def test_text_formats_are_told_by_content(tmp_path: Path, content: str, expected: FileFormat,
                                          phases: tuple[Phase, ...]) -> None:
    path = tmp_path / "file.dat"  # the extension says nothing
    path.write_text(content)
    found = detect(path)
    assert found.format is expected
    assert found.phases == phases


def test_ndjson_with_a_long_first_line_is_still_ndjson(tmp_path: Path) -> None:
    big = fhir_patient()
    big["text"] = {"div": "x" * 20000}
    path = tmp_path / "big.ndjson"
    path.write_text(json.dumps(big) + "\n" + json.dumps(fhir_service_request()) + "\n")
    assert detect(path).format is FileFormat.FHIR_NDJSON


@pytest.mark.parametrize(("name", "preamble", "with_meta"), [
    ("study.dcm", True, True),
    ("IM0001", True, True),  # no extension
    ("raw-stream", False, True),  # no preamble, file meta
    ("implicit", False, False),  # no preamble, no file meta (implicit VR little endian dataset)
])
def test_dicom_files_are_told_with_or_without_extension_or_preamble(tmp_path: Path, name: str, preamble: bool,
                                                                    with_meta: bool) -> None:
    path = tmp_path / name
    if with_meta:
        write_dicom(path, preamble=preamble)
    else:
        import pydicom
        from api_factories import dicom_dataset

        ds = dicom_dataset()
        del ds.file_meta
        ds.preamble = None
        pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True)
    found = detect(path)
    assert found.format is FileFormat.DICOM and found.phases == (Phase.IMAGING,)


def test_binary_garbage_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    found = detect(path)
    assert found.format is FileFormat.UNKNOWN and found.reason


def test_ndjson_items_report_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.ndjson"
    path.write_text("\n".join([json.dumps(fhir_patient()), "{not json", "", json.dumps({"a": 1}),
                               json.dumps(fhir_imaging_study())]) + "\n")
    items = list(ndjson_items(path))
    assert [(i.position, i.phase, i.problem is None) for i in items] == [
        (1, Phase.IDENTITY, True), (2, Phase.ORDERS, False), (4, Phase.ORDERS, False), (5, Phase.IMAGING, True)]


def test_fhir_and_dicom_json_items(tmp_path: Path) -> None:
    fhir = tmp_path / "a.json"
    fhir.write_text(json.dumps([fhir_patient(), {"no": "type"}]))
    assert [(i.position, i.value is not None) for i in fhir_json_items(fhir)] == [(1, True), (2, False)]
    qido = tmp_path / "q.json"
    qido.write_text(json.dumps([dicom_json_dataset(), {"PatientID": "x"}]))
    assert [(i.position, i.value is not None) for i in dicom_json_items(qido)] == [(1, True), (2, False)]


def test_telling_hl7_and_fhir_files_imports_no_dicom_reader(tmp_path: Path) -> None:
    """A load of HL7 or FHIR extracts never reads DICOM: pydicom (a quarter of a CPU-second of the command's start) is
    imported only when a file is neither HL7 nor JSON and may be a dataset."""
    import subprocess
    import sys

    _hl7_file(tmp_path / "feed.hl7", "\r")
    (tmp_path / "patients.ndjson").write_text(json.dumps(fhir_patient()) + "\n" + json.dumps(fhir_patient()) + "\n",
                                              encoding="utf-8")
    dataset = write_dicom(tmp_path / "image", preamble=False)  # told by its first element, the reader imported then
    script = ("import sys; from pathlib import Path; from api.feeds.ingest_formats import detect; "
              "kinds = [detect(Path(p)).format.name for p in sys.argv[1:3]]; "
              "assert 'pydicom' not in sys.modules, kinds; "
              "print(*kinds, detect(Path(sys.argv[3])).format.name, 'pydicom' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "feed.hl7"), str(tmp_path / "patients.ndjson"),
                           str(dataset)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == ["HL7V2", "FHIR_NDJSON", "DICOM", "True"]
