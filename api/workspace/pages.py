"""The workspace's pages and its menu: which page each person sees, by the scopes of their role.

The shell (``api/static/index.html`` and ``app.js``) draws the header, the menu, the live count and a region for the
page; each page is a script under ``api/static/pages/`` that registers itself with the shell. To add a page (the
identity review of the ``mpi-steward`` role, say):

1. add a :class:`Page` to :data:`PAGES` below: its id (the URL is ``/ui/#/<id>``), the menu label, the scope a
   person's role must grant (``api.auth.accounts.ROLE_SCOPES``) and its script;
2. write ``api/static/pages/<script>``, which calls ``priorscan.registerPage({id, title, render})``:
   ``render(container, params, shell)`` fills ``container`` (the page's ``<div>``; ``params`` holds the rest of
   the path and the query) using the shell's helpers (``shell.api`` for JSON with the session cookie, ``shell.el``
   to build elements without innerHTML, ``shell.formatDate``/``formatDateTime`` in Europe/London,
   ``shell.announce`` for screen readers, ``shell.live.on(event, handler)`` for the live channel, whose events
   come from :mod:`api.workspace.live` — register a source there for your page's own events);
3. its JSON endpoints check the same scope with ``api.http.deps.require`` and audit each patient they show.

The menu is sent with the session (``GET /ui/session``), and the shell loads only the scripts of the pages listed,
so a person never receives the code of a page their role does not grant.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.auth.principal import Principal
from api.auth.scopes import ALERTS, DUPLICATE_CHECK, OPERATIONS


@dataclass(frozen=True)
class Page:
    id: str
    title: str
    scope: str
    script: str
    menu: bool = True  # False: reachable by link only (a request, a patient)


PAGES: tuple[Page, ...] = (
    Page("worklist", "Worklist", ALERTS, "worklist.js"),
    Page("request", "Request", ALERTS, "request.js", menu=False),
    Page("patient", "Patient", "system/ImagingStudy.rs", "patient.js", menu=False),
    Page("check", "Check a request", DUPLICATE_CHECK, "check.js"),
    Page("identity-review", "Identity review", "priorscan/mpi-review", "review.js"),
    Page("feeds", "Feeds", OPERATIONS, "feeds.js"),  # for admins: feed health (docs/operations.md)
)


def pages_for(principal: Principal) -> list[Page]:
    """The pages ``principal`` may open, in menu order."""
    return [page for page in PAGES if principal.allows(page.scope)]
