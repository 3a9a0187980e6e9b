"""The edges of priorscan: everything that talks to the world outside the domain packages.

``api`` turns the wire into calls on the fronts of :mod:`mpi`, :mod:`imaging` and :mod:`dedupe`, each in one unit of
work (:func:`priorscan.unit_of_work.unit_of_work`), and their answers and errors back into the wire:

- :mod:`api.http`: the FastAPI application (:func:`create_app`) with one router module per resource
  (:mod:`api.http.routers`: the duplicate check, FHIR R4 Patient with PDQm/PIXm/``$match``, ImagingStudy,
  DiagnosticReport, ServiceRequest and Bundles, CDS Hooks, DICOMweb STOW-RS, alerts, the workspace page), the shared
  dependencies (:mod:`api.http.deps`), the one HTTP error mapping (:mod:`api.http.errors`) and ``priorscan serve``;
- :mod:`api.feeds`: HL7 v2 over MLLP and ``POST /hl7``, FHIR JSON, DICOM C-STORE and STOW-RS, files
  (``priorscan ingest``) and bulk loads (``priorscan backfill``), dead letters;
- :mod:`api.auth`: who is calling: scopes, tokens, SMART backend services, accounts and web sessions, the HTTP door;
- :mod:`api.cli`: the command line's edge commands (``demo``, ``serve``, ``ingest``, ``backfill``, ``token``,
  ``user``, ``smart``, ``cds``, ``deadletters``): :data:`COMMANDS`, which :mod:`priorscan.cli` reaches through this
  front only (``priorscan.cli`` names no module of ``api``);
- :mod:`api.workspace`: the read models of the workspace page; :mod:`api.context`: what a running process holds.

Nothing imports ``api``: it is the top layer (``.importlinter``). Its modules are imported when first used, so that
``priorscan --help`` stays quick.
"""

from __future__ import annotations

import importlib
from typing import Any

from api.cli import COMMANDS


def create_app(*args: Any, **kwargs: Any) -> Any:
    """The FastAPI application (:func:`api.http.app.create_app`)."""
    from api.http.app import create_app as create

    return create(*args, **kwargs)


def __getattr__(name: str) -> Any:
    """A command of :data:`COMMANDS`, imported on first use."""
    target = COMMANDS.get(name)
    if target is None:
        raise AttributeError(f"module 'api' has no attribute {name!r}")
    module_name, function_name = target.split(":")
    return getattr(importlib.import_module(module_name), function_name)


__all__ = ["COMMANDS", "create_app", *COMMANDS]
