"""The generator's settings: error rates, volumes and each trust's feed dialect, in one typed model.

Every rate is a share of *source records* (one patient's registration at one trust) unless its description says
otherwise. Rates are met by quotas (see :mod:`regionsynth.corruption`), so even a small region shows each error at
close to its rate. The defaults are judgement, chosen to resemble what NHS PAS and PACS feeds contain; they are
recorded in ``truth/manifest.json`` with every region written.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ErrorRates(BaseModel):
    """How often each kind of data-entry error appears; shares of source records unless stated."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    typo: float = Field(default=0.03, ge=0, le=1, description="one keying slip in the given or family name")
    nickname: float = Field(default=0.03, ge=0, le=1, description="given name recorded as a nickname (William -> Bill)")
    surname_change: float = Field(default=0.02, ge=0, le=1,
                                  description="record still carries the surname before marriage")
    swapped_names: float = Field(default=0.005, ge=0, le=1, description="given and family name swapped")
    date_transposed: float = Field(default=0.005, ge=0, le=1, description="birth date with day and month transposed")
    missing_nhs_number: float = Field(default=0.08, ge=0, le=1, description="no NHS number on the record")
    mistyped_nhs_number: float = Field(default=0.002, ge=0, le=1,
                                       description="NHS number mistyped: failing the check, unissued, or another's")
    untraced: float = Field(default=0.05, ge=0, le=1, description="NHS number present but not verified (status 02-06)")
    moved_house: float = Field(default=0.04, ge=0, le=1, description="record still carries the address before a move")
    postcode_typo: float = Field(default=0.01, ge=0, le=1, description="one keying slip in the postcode")
    duplicate_registration: float = Field(default=0.02, ge=0, le=1,
                                          description="a second hospital number at the same trust (of primary records)")


class Volumes(BaseModel):
    """Population and activity figures (REFERENCE.md where it gives them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tests_per_person_year: float = Field(default=0.8, gt=0,
                                         description="imaging tests per person per year (NHS England)")
    modality_mix: dict[str, float] = Field(
        default_factory=lambda: {"XR": 47.0, "US": 23.0, "CT": 15.0, "MR": 8.5, "MG": 3.0, "NM": 0.8, "RF": 0.5},
        description="relative share of studies by modality among procedures the patient can have (mammography is "
                    "weighted up because only women over 30 qualify; the observed mix is XR 47, US 23, CT 15, MR 9, "
                    "other 2 per cent)")
    follow_up_share: float = Field(default=0.12, ge=0, le=1,
                                   description="studies followed by a comparable one within months")
    trust_count_weights: tuple[float, float, float] = Field(default=(0.45, 0.40, 0.15),
                                                            description="chance of being registered at 1, 2, 3 trusts")
    specialist_referral_share: float = Field(default=0.15, ge=0, le=1,
                                             description="chance that a second or third trust is the specialist centre")
    no_nhs_number_person: float = Field(default=0.01, ge=0, le=1,
                                        description="people with no NHS number (overseas visitors)")
    twin_share: float = Field(default=0.03, ge=0, le=1, description="children born as one of twins")
    household_move_share: float = Field(default=0.12, ge=0, le=1,
                                        description="households that moved within the history")
    married_name_share: float = Field(default=0.6, ge=0, le=1,
                                      description="married partners who took the other's surname")
    double_barrelled_share: float = Field(default=0.015, ge=0, le=1,
                                          description="households with a double-barrelled surname")
    middle_name_share: float = Field(default=0.45, ge=0, le=1)
    duplicates_merged: float = Field(default=0.8, ge=0, le=1,
                                     description="duplicate registrations merged (A40) by the as-of")
    duplicate_link_first: float = Field(default=0.25, ge=0, le=1,
                                        description="duplicates linked (A24) before being merged")
    identifier_change: float = Field(default=0.003, ge=0, le=1,
                                     description="records whose hospital number changes (A47)")
    twin_mislink: float = Field(default=0.2, ge=0, le=1,
                                description="twin pairs at one trust linked in error, then unlinked")
    spontaneous_update: float = Field(default=0.15, ge=0, le=1,
                                      description="records with an A08/A31 that changes little")
    resend_share: float = Field(default=0.05, ge=0, le=1,
                                description="studies sent twice (a CT RDSR grows when re-sent)")
    dicom_recent_days: int = Field(default=365, ge=0, description="studies this recent are delivered as DICOM")
    dicom_older_share: float = Field(default=0.02, ge=0, le=1,
                                     description="share of older studies also delivered as DICOM")
    ct_rdsr_share: float = Field(default=0.92, ge=0, le=1, description="CT studies in DICOM that come with an RDSR")
    xr_rdsr_share: float = Field(default=0.2, ge=0, le=1, description="projection X-ray studies in DICOM with an RDSR")
    other_patient_ids_share: float = Field(default=0.5, ge=0, le=1,
                                           description="DICOM headers carrying the NHS number too")
    orders_per_person: float = Field(default=0.07, ge=0, le=1, description="orders per person in the order window")
    order_window_days: int = Field(default=30, ge=1)
    order_scenarios: dict[str, float] = Field(
        default_factory=lambda: {"cross-trust-repeat": 0.2, "same-trust-repeat": 0.1, "oncology": 0.1,
                                 "trauma": 0.1, "paediatric": 0.1, "new": 0.4},
        description="relative weights of the kinds of order written")


class TrustFeedProfile(BaseModel):
    """How one trust talks: HL7 dialect, FHIR use, descriptions, numbering."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hl7_version: Literal["2.3", "2.4", "2.5"] | None = Field(default="2.4", description="None: no HL7 v2 feeds")
    segment_end: Literal["CR", "LF"] = "CR"
    mllp: bool = False
    pid3_authority: Literal["CX4", "CX6"] = Field(default="CX4", description="where the ODS code qualifies the MRN")
    nhs_status_style: Literal["PID32", "ZSEG"] = Field(default="PID32",
                                                       description="NHS number status in PID-32 or ZPI")
    update_event: Literal["A08", "A31"] = "A08"
    nhs_first: bool = Field(default=False, description="NHS number before the hospital number in PID-3")
    sending_application: str = "PAS"
    fhir_patients: Literal["none", "bundles", "snapshot"] = Field(default=
        "none", description="bundles: Patient resources instead of ADT; snapshot: also an NDJSON of current records")
    fhir_ndjson_share: float = Field(default=0.2, ge=0, le=1, description="of FHIR patient records sent as NDJSON")
    result_feed: Literal["oru", "fhir"] = "oru"
    oru_uid_style: Literal["ZDS", "OBX"] = "ZDS"
    order_feed: Literal["hl7", "fhir"] = "hl7"
    description_style: Literal["terse", "long", "short"] = "terse"
    code_system: str = Field(default="NICIP", description="HL7 coding system name for procedure codes")
    accession_prefix: str = Field(default="ACC", pattern=r"^[A-Z]{0,6}$")
    dicom_extension: bool = Field(default=True, description="False: DICOM files are written without .dcm")
    dose_unit_meaning: Literal["standard", "vendor"] = Field(default=
        "standard", description="vendor: RDSR unit meanings written mGycm / Gym2")

    @model_validator(mode="after")
    def _pid32_needs_v24(self) -> TrustFeedProfile:
        if self.hl7_version == "2.3" and self.nhs_status_style == "PID32":
            raise ValueError("PID-32 does not exist in HL7 v2.3; use nhs_status_style='ZSEG'")
        if self.hl7_version is None and (self.fhir_patients != "bundles" or self.result_feed == "oru"
                                         or self.order_feed == "hl7"):
            raise ValueError("a trust without HL7 must send patients, results and orders as FHIR")
        return self


def default_profiles() -> dict[str, TrustFeedProfile]:
    """The consortium's feed dialects: every variant the issue asks for appears at one trust at least."""
    return {
        "RTK": TrustFeedProfile(hl7_version="2.4", segment_end="CR", pid3_authority="CX4", nhs_status_style="PID32",
                                update_event="A08", description_style="terse", accession_prefix="SPA",
                                sending_application="CERNER"),
        "RXC": TrustFeedProfile(hl7_version="2.3", segment_end="LF", pid3_authority="CX6", nhs_status_style="ZSEG",
                                update_event="A31", nhs_first=True, description_style="long", oru_uid_style="OBX",
                                accession_prefix="ES", sending_application="IPM", dicom_extension=False,
                                dose_unit_meaning="vendor"),
        "RPC": TrustFeedProfile(hl7_version=None, fhir_patients="bundles", result_feed="fhir", order_feed="fhir",
                                description_style="short", accession_prefix="QV"),
        "RA2": TrustFeedProfile(hl7_version="2.5", segment_end="CR", mllp=True, pid3_authority="CX4",
                                nhs_status_style="PID32", fhir_patients="snapshot", description_style="short",
                                code_system="99RA2RAD", accession_prefix="RS", sending_application="EPIC"),
        "RYR": TrustFeedProfile(hl7_version="2.5", segment_end="LF", pid3_authority="CX6", nhs_status_style="ZSEG",
                                update_event="A31", nhs_first=True, description_style="terse", oru_uid_style="OBX",
                                accession_prefix="UHS", sending_application="LORENZO"),
    }


class SynthSettings(BaseModel):
    """Everything that shapes a synthetic region besides the seed, the size and the as-of date."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    errors: ErrorRates = Field(default_factory=lambda: ErrorRates())
    volumes: Volumes = Field(default_factory=lambda: Volumes())
    profiles: dict[str, TrustFeedProfile] = Field(default_factory=default_profiles)
    bundle_entries: int = Field(default=250, ge=1, description="entries per FHIR Bundle file")
    batch_bundle_every: int = Field(default=4, ge=1, description="every n-th Bundle is a batch, the rest transactions")
    sort_buffer_bytes: int = Field(default=64_000_000, ge=10_000,
                                   description="feed bytes held in memory for time-sorting before runs spill to disk")

    def profile(self, ods: str, index: int) -> TrustFeedProfile:
        """The profile of trust ``ods``; a trust not configured borrows one of the defaults by position."""
        if ods in self.profiles:
            return self.profiles[ods]
        borrowed = list(self.profiles.values())
        return borrowed[index % len(borrowed)]
