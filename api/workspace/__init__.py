"""The radiographer's and radiologist's workspace: the read models behind ``/ui/`` and its live channel.

Public front: the routers import from here only.

- :func:`read_worklist` with a :class:`WorklistQuery` → :class:`WorklistItem` (a trust's requests of one day)
- :func:`read_request` → :class:`RequestView` (one request, its priors, its patient)
- :func:`read_patient_view` → :class:`PatientView` (imaging across the trusts, dose over rolling windows)
- :func:`read_patient`, :func:`format_nhs_number`, :func:`identity_doubt`: the patient banner
- the live channel: :class:`ChangeFeed`, :func:`register_source`, :func:`sse`
- the menu: :data:`PAGES`, :func:`pages_for`
- local time: :func:`local_today`, :func:`day_bounds`
"""

from api.workspace.banner import PatientBanner, format_nhs_number, identity_doubt, read_patient
from api.workspace.clock import DEFAULT_TIMEZONE, day_bounds, local_today
from api.workspace.live import (
    POLL_SECONDS,
    RECONNECT_MS,
    STREAM_SECONDS,
    Change,
    ChangeFeed,
    changes_since,
    parse_cursor,
    register_source,
    source_scopes,
    sse,
)
from api.workspace.pages import PAGES, Page, pages_for
from api.workspace.patients import DOSE_WINDOWS, DoseWindow, PatientView, dose_windows, read_patient_view
from api.workspace.requests import RequestView, complete_priors, read_request
from api.workspace.worklist import STATUSES, VERDICTS, WorklistItem, WorklistQuery, open_alert_count, read_worklist

__all__ = [
    "DEFAULT_TIMEZONE",
    "DOSE_WINDOWS",
    "PAGES",
    "POLL_SECONDS",
    "RECONNECT_MS",
    "STATUSES",
    "STREAM_SECONDS",
    "VERDICTS",
    "Change",
    "ChangeFeed",
    "DoseWindow",
    "Page",
    "PatientBanner",
    "PatientView",
    "RequestView",
    "WorklistItem",
    "WorklistQuery",
    "changes_since",
    "complete_priors",
    "day_bounds",
    "dose_windows",
    "format_nhs_number",
    "identity_doubt",
    "local_today",
    "open_alert_count",
    "pages_for",
    "parse_cursor",
    "read_patient",
    "read_patient_view",
    "read_request",
    "read_worklist",
    "register_source",
    "source_scopes",
    "sse",
]
