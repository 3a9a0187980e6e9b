"""The edges of priorscan: everything that talks to the world outside the domain packages.

``api`` turns the wire into calls on the fronts of :mod:`mpi`, :mod:`imaging` and :mod:`dedupe`, each in one unit of
work (:func:`priorscan.unit_of_work.unit_of_work`), and their answers and errors back into the wire:

- HTTP (:func:`create_app`): the duplicate-check API, FHIR R4 (Patient, ImagingStudy, DiagnosticReport,
  ServiceRequest, Bundles, PDQm/PIXm), CDS Hooks, DICOMweb STOW-RS, alerts, the radiographer page; one router module
  per resource under :mod:`api.routers`, shared dependencies in :mod:`api.deps`;
- feeds: HL7 v2 over MLLP and ``POST /hl7`` (:mod:`api.hl7_service`, :mod:`api.mllp`), FHIR JSON
  (:mod:`api.fhir_service`), DICOM C-STORE and files (:mod:`api.dicom_receiver`, :mod:`api.ingest`);
- who is calling: tokens, SMART backend services, accounts and web sessions (:mod:`api.principal`, :mod:`api.oauth`,
  :mod:`api.accounts`, :mod:`api.web_session`);
- the command line's edge commands (``demo``, ``serve``, ``ingest``, ``backfill``, ``token``, ``user``, ``smart``,
  ``cds``, ``deadletters``): :data:`COMMANDS`, which :mod:`priorscan.cli` reaches through this front only
  (``priorscan.cli`` names no module of ``api``).

Nothing imports ``api``: it is the top layer (``.importlinter``). Its modules are imported when first used, so that
``priorscan --help`` stays quick.
"""

from __future__ import annotations

import importlib
from typing import Any

#: The command-line entry points ``api`` offers: name → ``module:function`` within ``api`` (imported when called).
COMMANDS: dict[str, str] = {
    "run_demo": "api.demo:run_demo",
    "run_serve": "api.server:run_serve",
    "run_ingest": "api.ingest:run_ingest",
    "run_token_create": "api.admin_cli:run_token_create",
    "run_token_revoke": "api.admin_cli:run_token_revoke",
    "run_smart_register": "api.admin_cli:run_smart_register",
    "run_smart_disable": "api.admin_cli:run_smart_disable",
    "run_user_create": "api.admin_cli:run_user_create",
    "run_cds_trust": "api.admin_cli:run_cds_trust",
    "run_deadletters_list": "api.deadletters:run_list",
    "run_deadletters_replay": "api.deadletters:run_replay",
}


def create_app(*args: Any, **kwargs: Any) -> Any:
    """The FastAPI application (:func:`api.app.create_app`)."""
    from api.app import create_app as create

    return create(*args, **kwargs)


def __getattr__(name: str) -> Any:
    """A command of :data:`COMMANDS`, imported on first use."""
    target = COMMANDS.get(name)
    if target is None:
        raise AttributeError(f"module 'api' has no attribute {name!r}")
    module_name, function_name = target.split(":")
    return getattr(importlib.import_module(module_name), function_name)


__all__ = ["COMMANDS", "create_app", *COMMANDS]
