"""Factories for the feed tests: HL7 v2 ADT messages as PAS systems send them, ACK reading, FHIR Patients."""

from __future__ import annotations

import itertools
import socket
from dataclasses import dataclass
from typing import Any

from hl7.client import MLLPClient

from mpi.nhs_number import check_digit
from mpi.records import RecordKey
from mpi.service import PatientIndex
from mpi.tables import SourceRecord
from priorscan.trusts import NHS_NUMBER_SYSTEM

RTK = "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number"
RXC = "https://fhir.esht.nhs.uk/Id/hospital-number"
RA2 = "https://fhir.royalsurrey.nhs.uk/Id/hospital-number"
RYR = "https://fhir.uhsussex.nhs.uk/Id/hospital-number"
_serial = itertools.count(1)


def nhs_number(seed: int) -> str:
    """A valid test NHS number (999 range, never issued) derived from ``seed``."""
    for n in itertools.count(seed):
        first = f"999{n % 1_000_000:06d}"
        digit = check_digit(first)
        if digit is not None:
            return first + str(digit)
    raise AssertionError("unreachable")


def record_of(server: Any, key: RecordKey) -> SourceRecord | None:
    """The source record ``key`` as the listener's store holds it (a fresh session: what is committed)."""
    with server.context.sessions() as session:
        return PatientIndex(session, server.context.trusts).get_record(key)


def control_id() -> str:
    return f"MSG{next(_serial):08d}"


def pid(ids: str = "AB123456^^^RTK^MR~9990000018^^^NHS^NH", *, name: str = "SMITH^JOHN^^^MR^^L",
        dob: str = "19800102", sex: str = "M", address: str = "1 HIGH ST^^GUILDFORD^SURREY^GU1 1AA^GBR^H",
        phone: str = "01483 000000^PRN^PH", pid2: str = "", pid32: str = "", death: str = "",
        set_id: str = "1") -> str:
    """A PID segment; fields are raw ER7 (escape sequences and ``""`` as the sender would write them)."""
    fields = [""] * 33
    fields[:14] = ["PID", set_id, pid2, ids, "", name, "", dob, sex, "", "", address, "", phone]
    fields[29], fields[32] = death, pid32
    while fields and fields[-1] == "":
        fields.pop()
    return "|".join(fields)


def adt(trigger: str = "A08", *segments: str, control: str | None = None, facility: str = "RTK",
        application: str = "PAS", version: str = "2.4", event_time: str = "20240101120000",
        segment_end: str = "\r", structure: str = "") -> str:
    """An ADT message: MSH, EVN and the given segments (a default PID when none is given)."""
    msh = (f"MSH|^~\\&|{application}|{facility}|PRIORSCAN|REGION|{event_time}||ADT^{trigger}"
           f"{'^' + structure if structure else ''}|{control or control_id()}|P|{version}")
    body = list(segments) or [pid()]
    return segment_end.join([msh, f"EVN|{trigger}|{event_time}", *body]) + segment_end


@dataclass(frozen=True)
class Ack:
    """An ACK as read back by the test (an independent reading: split on the standard delimiters)."""

    text: str

    def segment(self, name: str) -> list[str]:
        for line in self.text.strip("\x0b\x1c\r\n").split("\r"):
            if line.startswith(name + "|"):
                return line.split("|")
        return []

    @property
    def code(self) -> str:
        return self.segment("MSA")[1]

    @property
    def control_id(self) -> str:
        return self.segment("MSA")[2]

    @property
    def error_code(self) -> str:
        """ERR-3.1 (v2.5 and later), or the code of ERR-1's ELD (v2.3, v2.4)."""
        err = self.segment("ERR")
        if len(err) > 1 and err[1]:
            parts = err[1].split("^")
            return parts[3].split("&")[0] if len(parts) > 3 else ""
        return err[3].split("^")[0] if len(err) > 3 else ""

    @property
    def error_location(self) -> str:
        """ERR-2 (v2.5 and later), or the segment, sequence and field of ERR-1's ELD (v2.3, v2.4)."""
        err = self.segment("ERR")
        if len(err) > 1 and err[1]:
            return "^".join(p for p in err[1].split("^")[:3] if p)
        return err[2] if len(err) > 2 else ""


def exchange(client: MLLPClient, message: str) -> Ack:
    """Send one message and read its whole ACK frame."""
    data = client.send_message(message)
    while not data.endswith(b"\x1c\x0d"):
        more = client.socket.recv(4096)
        if not more:
            break
        data += more
    return Ack(data.decode("utf-8"))


def send_raw(port: int, payload: bytes, timeout: float = 10.0) -> list[Ack]:
    """Send raw bytes on a fresh connection and read ACK frames until the server stops answering."""
    acks: list[Ack] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        buffer = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
        for frame in buffer.split(b"\x1c\x0d"):
            if frame.strip():
                acks.append(Ack(frame.decode("utf-8")))
    return acks


def fhir_patient(*, hospital: tuple[str, str] | None = (RTK, "AB123456"), nhs: str | None = None,
                 verification: str | None = None, family: str = "Smith", given: list[str] | None = None,
                 birth_date: str | None = "1980-01-02", gender: str | None = "male",
                 postcode: str | None = "GU1 1AA", **extra: Any) -> dict[str, Any]:
    """A FHIR R4 Patient as a client sends it."""
    identifiers: list[dict[str, Any]] = []
    if nhs:
        ident: dict[str, Any] = {"system": NHS_NUMBER_SYSTEM, "value": nhs}
        if verification:
            ident["extension"] = [{
                "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
                "valueCodeableConcept": {"coding": [{
                    "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland",
                    "code": verification}]}}]
        identifiers.append(ident)
    if hospital:
        identifiers.append({"system": hospital[0], "value": hospital[1]})
    resource: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family,
                                                                      "given": given or ["John"]}]}
    if identifiers:
        resource["identifier"] = identifiers
    if birth_date:
        resource["birthDate"] = birth_date
    if gender:
        resource["gender"] = gender
    if postcode:
        resource["address"] = [{"line": ["1 High Street"], "city": "Guildford", "postalCode": postcode}]
    resource.update(extra)
    return resource
