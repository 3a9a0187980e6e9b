"""The consortium's trusts as configuration: loaded from TOML and validated on load.

A trust's hospital numbers form one identifier namespace. Every way a feed may name that namespace (its ODS code,
HL7 assigning-authority aliases, its FHIR identifier system, its DICOM Issuer of Patient ID) resolves here to the
canonical namespace, which is the trust's FHIR system.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator

from priorscan.errors import ConfigurationError

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"


class Trust(BaseModel, frozen=True):
    """One trust of the consortium."""

    ods: str = Field(pattern=r"^[A-Z0-9]{3,5}$")
    name: str = Field(min_length=3)
    hl7_aliases: tuple[str, ...] = ()
    fhir_system: str = Field(pattern=r"^https?://")
    dicom_issuer: str
    hospital_number_pattern: str | None = None
    viewer_url_template: str

    @field_validator("hospital_number_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"hospital_number_pattern does not compile: {exc}") from exc
        return value

    @field_validator("viewer_url_template")
    @classmethod
    def _template_names_study(cls, value: str) -> str:
        if "{study_instance_uid}" not in value and "{accession_number}" not in value:
            raise ValueError("viewer_url_template must use {study_instance_uid} or {accession_number}")
        return value

    def viewer_url(self, study_instance_uid: str, accession_number: str | None = None, patient_id: str = "") -> str:
        return self.viewer_url_template.format(
            study_instance_uid=study_instance_uid, accession_number=accession_number or "", patient_id=patient_id
        )


@dataclass(frozen=True)
class TrustRegistry:
    """All trusts, with look-ups from every alias to the trust."""

    trusts: tuple[Trust, ...]

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for trust in self.trusts:
            for key in self._keys(trust):
                if key in seen and seen[key] != trust.ods:
                    raise ConfigurationError(f"trust alias {key!r} is claimed by both {seen[key]} and {trust.ods}")
                seen[key] = trust.ods

    @staticmethod
    def _keys(trust: Trust) -> set[str]:
        return {trust.ods.upper(), trust.fhir_system.upper(), trust.dicom_issuer.upper(),
                *(a.upper() for a in trust.hl7_aliases)}

    def by_ods(self, ods: str) -> Trust:
        for trust in self.trusts:
            if trust.ods == ods.upper():
                return trust
        raise ConfigurationError(f"unknown trust ODS code {ods!r}")

    def resolve(self, name: str | None) -> Trust | None:
        """The trust that ``name`` (ODS code, alias, FHIR system or DICOM issuer) denotes, if any."""
        if not name:
            return None
        key = name.strip().upper()
        for trust in self.trusts:
            if key in self._keys(trust):
                return trust
        return None

    def namespace(self, name: str) -> str:
        """The canonical identifier namespace for ``name``: a trust's FHIR system, or ``name`` itself."""
        trust = self.resolve(name)
        return trust.fhir_system if trust else name.strip()

    @property
    def ods_codes(self) -> list[str]:
        return [t.ods for t in self.trusts]


def load_trusts(path: Path) -> TrustRegistry:
    """Load and validate the trust configuration at ``path``."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read trust configuration {path}: {exc}") from exc
    entries = raw.get("trust")
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError(f"{path}: expected one or more [[trust]] tables")
    try:
        trusts = tuple(Trust.model_validate(entry) for entry in entries)
    except ValidationError as exc:
        raise ConfigurationError(f"{path}: invalid trust entry: {exc}") from exc
    if len({t.ods for t in trusts}) != len(trusts):
        raise ConfigurationError(f"{path}: duplicate ODS code")
    return TrustRegistry(trusts)


@lru_cache(maxsize=8)
def default_trusts(path: Path | None = None) -> TrustRegistry:
    from priorscan.settings import get_settings

    return load_trusts(path or get_settings().trusts_file)
