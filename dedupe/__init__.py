"""Duplicate-scan detection: comparable recent priors for every new imaging request, and the alerts they raise.

Public front: other packages and notebooks import from here only.

- :func:`run_check` with a :class:`CheckRequest` (:class:`PatientQuery`, :class:`ProcedureQuery`)
  → :class:`CheckOutcome`
- the rule table: :func:`active_rules` (``settings.rules_file`` or the packaged default), :func:`load_rules`,
  :class:`RuleSet`; the pure judgement :func:`judge` over :class:`Exam` and :class:`RequestFacts`
- alerts: :func:`list_alerts`, :func:`get_alert`, :func:`acknowledge`, :func:`override`, :func:`cancel`,
  :func:`alert_json`
- adapters: :func:`apply_order` (HL7 ORM^O01 / OMI^O23), :func:`apply_service_request` (FHIR ServiceRequest),
  :func:`verify_cds_jwt` (CDS Hooks client JWTs), :func:`run_hook` and :func:`apply_feedback` (CDS Hooks cards)
- :func:`evaluate_repeats`: recall and precision against a synthetic region's ``truth/repeats.csv``
"""

from typing import TYPE_CHECKING

from priorscan.lazy_front import lazy_front

if TYPE_CHECKING:  # the names this front offers, each imported on first use (priorscan.lazy_front)
    from dedupe.alerts import (
        ACKNOWLEDGED,
        CANCELLED,
        OPEN,
        OVERRIDDEN,
        STATUSES,
        AlertStateError,
        Coding,
        acknowledge,
        alert_json,
        alert_of_order,
        cancel,
        get_alert,
        history,
        list_alerts,
        note,
        override,
    )
    from dedupe.analytics import (
        alert_outcomes,
        alerts_frame,
        before_and_after,
        override_reasons,
        repeat_rates,
        repeats_frame,
        run_export_analytics,
    )
    from dedupe.cds_auth import CdsClient, looks_like_jwt, verify_cds_jwt
    from dedupe.cds_hooks import HOOKS as CDS_HOOKS
    from dedupe.cds_hooks import apply_feedback, patient_from_resource, run_hook
    from dedupe.cds_hooks import discovery as cds_discovery
    from dedupe.check import CheckOutcome, CheckRequest, PatientQuery, ProcedureQuery, normalise_request, run_check
    from dedupe.circumstances import RequestReason
    from dedupe.comparable import ComparablePrior, Exam, Judgement, Procedure, RequestFacts, judge
    from dedupe.config import active_rules
    from dedupe.dose import dose_avoided
    from dedupe.evaluate import RepeatFigures, evaluate_repeats
    from dedupe.fhir_orders import apply_service_request, apply_service_request_resource
    from dedupe.hl7_orders import apply_order
    from dedupe.rules import RuleSet, load_rules
    from dedupe.tables import Alert
    from dedupe.vocabulary import ProcedureCode

__all__ = [
    "ACKNOWLEDGED",
    "CANCELLED",
    "CDS_HOOKS",
    "OPEN",
    "OVERRIDDEN",
    "STATUSES",
    "Alert",
    "AlertStateError",
    "CdsClient",
    "CheckOutcome",
    "CheckRequest",
    "Coding",
    "ComparablePrior",
    "Exam",
    "Judgement",
    "PatientQuery",
    "Procedure",
    "ProcedureCode",
    "ProcedureQuery",
    "RepeatFigures",
    "RequestFacts",
    "RequestReason",
    "RuleSet",
    "acknowledge",
    "active_rules",
    "alert_json",
    "alert_of_order",
    "alert_outcomes",
    "alerts_frame",
    "apply_feedback",
    "apply_order",
    "apply_service_request",
    "apply_service_request_resource",
    "before_and_after",
    "cancel",
    "cds_discovery",
    "dose_avoided",
    "evaluate_repeats",
    "get_alert",
    "history",
    "judge",
    "list_alerts",
    "load_rules",
    "looks_like_jwt",
    "normalise_request",
    "note",
    "override",
    "override_reasons",
    "patient_from_resource",
    "repeat_rates",
    "repeats_frame",
    "run_check",
    "run_export_analytics",
    "run_hook",
    "verify_cds_jwt",
]

__getattr__, __dir__ = lazy_front(__name__)
