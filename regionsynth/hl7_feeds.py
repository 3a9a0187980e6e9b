"""HL7 v2 messages as the trusts send them: ADT (A04, A08, A28, A31, A40, A24, A37, A47), ORU^R01, ORM^O01, OMI^O23.

Conventions follow the NHS England HL7 v2 ADT specification, with each trust's dialect from its
:class:`~regionsynth.settings.TrustFeedProfile`:

- MSH-4 is the trust's ODS code; versions 2.3, 2.4 and 2.5 are in use (MSH-9.3 message structure from 2.4).
- PID-3 carries the hospital number with CX.5 ``MR`` and the ODS code either as assigning authority (CX.4,
  ``K1234567^^^RYR^MR``) or as assigning facility (CX.6, ``K1234567^^^^MR^RYR``), and the NHS number as CX.1 with
  CX.4 ``NHS`` and CX.5 ``NH``.
- The NHS number status (01-08, as the UK Core verification status) goes in PID-32 (2.4 and later) or, at trusts
  that cannot send PID-32, in a Z-segment ``ZPI|1|<code>^<display>^NHSNSTATUS``.
- Merges (A40) and identifier changes (A47) name the retired number in MRG-1; links (A24) and unlinks (A37) carry two
  PID segments.
- Results (ORU) carry the procedure as OBR-4 ``code^description^coding system``, OBR-7 the observation time, OBR-25
  ``F``, and the StudyInstanceUID in a ZDS segment (IHE) or an OBX (DCM 110180).
- Orders carry the placer order number (ORC-2, OBR-2), OBR-4, body site and laterality (OBR-15 SPS.4/SPS.5; OBR-46 in
  2.5), the reason (OBR-13 and OBR-31) and the priority (ORC-7/OBR-27 TQ.6 before 2.5, TQ1-9 in 2.5).

Messages are built with CR between segments; :class:`regionsynth.sinks.Hl7FileWriter` applies each trust's segment
ends and framing.
"""

from __future__ import annotations

from datetime import date, datetime

from priorscan.hl7v2 import escape
from regionsynth.corruption import Recorded
from regionsynth.identifiers import Counter
from regionsynth.procedures import LATERALITY_SCT, Procedure, dicom_modality
from regionsynth.registrations import PatientEvent
from regionsynth.settings import TrustFeedProfile

NHS_STATUS_DISPLAY = {
    "01": "Number present and verified",
    "02": "Number present but not traced",
    "03": "Trace required",
    "04": "Trace attempted - No match or multiple match found",
    "05": "Trace needs to be resolved - (NHS Number or patient detail conflict)",
    "06": "Trace in progress",
    "07": "Number not present and trace not required",
    "08": "Trace postponed (baby under six weeks old)",
}
_ADT = {"baseline": "A28", "register": "A04", "merge": "A40", "link": "A24", "unlink": "A37", "change-id": "A47"}
_STRUCTURE = {"A04": "ADT_A01", "A08": "ADT_A01", "A28": "ADT_A05", "A31": "ADT_A05", "A40": "ADT_A39",
              "A24": "ADT_A24", "A37": "ADT_A37", "A47": "ADT_A30", "R01": "ORU_R01", "O01": "ORM_O01",
              "O23": "OMI_O23"}
_DIAGNOSTIC_SECTION = {"CT": "CT", "MR": "NMR", "US": "RUS", "XR": "RX", "MG": "RX", "NM": "NMS", "RF": "RX"}
_TQ_PRIORITY = {"stat": "S", "urgent": "A", "routine": "R"}
_TQ1_PRIORITY = {"stat": "S^Stat^HL70485", "urgent": "A^ASAP^HL70485", "routine": "R^Routine^HL70485"}


def ts(moment: datetime | date) -> str:
    """An HL7 TS: YYYYMMDDHHMMSS for a moment, YYYYMMDD for a day."""
    if isinstance(moment, datetime):
        return moment.strftime("%Y%m%d%H%M%S")
    return moment.strftime("%Y%m%d")


class Hl7Dialect:
    """Builds one trust's messages.

    Parameters
    ----------
    ods
        The trust's ODS code (MSH-4, and the assigning authority or facility of its hospital numbers).
    profile
        The trust's dialect.
    """

    def __init__(self, ods: str, profile: TrustFeedProfile) -> None:
        self.ods = ods
        self.profile = profile
        self.version = profile.hl7_version or "2.4"
        self.control = Counter(f"{ods}", 10)

    # -- shared segments ---------------------------------------------------------------------------------------------
    def msh(self, moment: datetime, code: str, event: str, application: str | None = None) -> str:
        """The MSH segment of a message sent at ``moment``."""
        kind = f"{code}^{event}" if self.version == "2.3" else f"{code}^{event}^{_STRUCTURE[event]}"
        return "|".join(["MSH", "^~\\&", application or self.profile.sending_application, self.ods, "PRIORSCAN",
                         "REGION", ts(moment), "", kind, self.control.next(), "P", self.version, "", "", "AL", "NE"])

    def mrn(self, number: str) -> str:
        """A hospital number as a PID-3 repetition, qualified the trust's way (CX.4 or CX.6)."""
        if self.profile.pid3_authority == "CX4":
            return f"{number}^^^{self.ods}^MR"
        return f"{number}^^^^MR^{self.ods}"

    def pid(self, set_id: int, number: str, state: Recorded) -> list[str]:
        """PID (and a ZPI at trusts that send the NHS number status in a Z-segment)."""
        nhs = state.nhs_number
        ids = [self.mrn(number)]
        if nhs:
            ids.insert(0 if self.profile.nhs_first else 1, f"{nhs}^^^NHS^NH")
        e = escape
        name = f"{e(state.family)}^{e(state.given)}^{e(state.middle)}"
        a = state.address
        address = f"{e(a.line1)}^{e(a.line2)}^{e(a.town)}^{e(a.county)}^{a.postcode}^GBR^H"
        fields = ["PID", str(set_id), "", "~".join(ids), "", name, "", ts(state.birth_date), state.sex, "", "",
                  address]
        segments = []
        if self.profile.nhs_status_style == "PID32":
            fields += [""] * (32 - (len(fields) - 1))
            fields[32] = state.nhs_status
            segments.append("|".join(fields))
        else:
            segments.append("|".join(fields))
            segments.append(f"ZPI|1|{state.nhs_status}^{NHS_STATUS_DISPLAY[state.nhs_status]}^NHSNSTATUS")
        return segments

    # -- ADT ---------------------------------------------------------------------------------------------------------
    def adt(self, event: PatientEvent) -> str:
        """The ADT message for ``event``."""
        trigger = _ADT.get(event.kind) or self.profile.update_event
        when = event.when
        segments = [self.msh(when, "ADT", trigger), f"EVN|{trigger}|{ts(when)}|||{self.profile.sending_application}"]
        if trigger in ("A24", "A37"):
            assert event.other_state is not None and event.other_number is not None
            segments += self.pid(1, event.number, event.state)
            segments.append("PV1|1|N")
            segments += self.pid(2, event.other_number, event.other_state)
            segments.append("PV1|1|N")
        elif trigger in ("A40", "A47"):
            segments += self.pid(1, event.number, event.state)
            segments.append(f"MRG|{self.mrn(event.other_number or '')}")
            if trigger == "A40":
                segments.append("PV1|1|N")
        else:
            segments += self.pid(1, event.number, event.state)
            segments.append("PV1|1|O" if trigger in ("A04", "A08") else "PV1|1|N")
        return "\r".join(segments)

    # -- results -----------------------------------------------------------------------------------------------------
    def _body_site(self, procedure: Procedure) -> str:
        site = f"{procedure.site_sct}&{escape(procedure.site_display)}&SCT"
        if procedure.laterality in LATERALITY_SCT:
            code, display = LATERALITY_SCT[procedure.laterality]
            return f"^^^{site}^{code}&{display}&SCT"
        return f"^^^{site}"

    def _usi(self, procedure: Procedure, description: str) -> str:
        return f"{procedure.code}^{escape(description)}^{self.profile.code_system}"

    def oru(self, moment: datetime, number: str, state: Recorded, study_uid: str, accession: str,
            placer: str, procedure: Procedure, description: str, performed: datetime) -> str:
        """A final result (ORU^R01) for one study."""
        obr = [""] * 26
        obr[0:8] = ["OBR", "1", placer, f"{accession}^{self.ods}", self._usi(procedure, description), "", "",
                    ts(performed)]
        obr[15] = self._body_site(procedure)
        obr[18] = accession
        obr[22] = ts(moment)
        obr[24] = _DIAGNOSTIC_SECTION.get(procedure.modality, "RAD")
        obr[25] = "F"
        segments = [self.msh(moment, "ORU", "R01", "RIS"), *self.pid(1, number, state), "PV1|1|O",
                    f"ORC|RE|{placer}|{accession}^{self.ods}||CM", "|".join(obr)]
        if self.profile.oru_uid_style == "ZDS":
            segments.append("OBX|1|TX|&GDT^Report||Reported. No acute abnormality detected.||||||F")
            segments.append(f"ZDS|{study_uid}^PACS^Application^DICOM")
        else:
            segments.append(f"OBX|1|ST|110180^Study Instance UID^DCM||{study_uid}||||||F")
            segments.append("OBX|2|TX|&GDT^Report||Reported. No acute abnormality detected.||||||F")
        return "\r".join(segments)

    # -- orders ------------------------------------------------------------------------------------------------------
    def order(self, moment: datetime, number: str, state: Recorded, placer: str,
              procedure: Procedure, description: str, priority: str, reason: str, planned_uid: str,
              accession: str) -> str:
        """A new order: ORM^O01 before v2.5, OMI^O23 from v2.5."""
        omi = self.version >= "2.5"
        obr = [""] * (47 if omi else 32)
        obr[0:5] = ["OBR", "1", placer, "", self._usi(procedure, description)]
        obr[6] = ts(moment)
        obr[13] = escape(reason)
        obr[15] = self._body_site(procedure)
        obr[18] = accession
        obr[24] = _DIAGNOSTIC_SECTION.get(procedure.modality, "RAD")
        obr[31] = f"^{escape(reason)}"
        segments = [self.msh(moment, "OMI" if omi else "ORM", "O23" if omi else "O01", "ORDERCOMMS"),
                    *self.pid(1, number, state), "PV1|1|O"]
        if omi:
            site = f"{procedure.site_sct}^{escape(procedure.site_display)}^SCT"
            if procedure.laterality in LATERALITY_SCT:
                code, display = LATERALITY_SCT[procedure.laterality]
                site += f"~{code}^{display}^SCT"
            obr[46] = site
            segments.append(f"ORC|NW|{placer}|||SC||||{ts(moment)}")
            segments.append(f"TQ1|1||||||{ts(moment)}||{_TQ1_PRIORITY[priority]}")
            segments.append("|".join(obr))
            segments.append(f"IPC|{accession}^{self.ods}|{accession}|{planned_uid}|{accession}-1|"
                            f"{dicom_modality(procedure)}^{dicom_modality(procedure)}^DCM")
        else:
            timing = f"^^^{ts(moment)}^^{_TQ_PRIORITY[priority]}"
            obr[5] = _TQ_PRIORITY[priority]
            obr[27] = timing
            segments.append(f"ORC|NW|{placer}|||SC||{timing}||{ts(moment)}")
            segments.append("|".join(obr))
        return "\r".join(segments)
