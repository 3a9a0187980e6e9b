"""The command line's edge commands: which module of ``api`` serves each of them.

``demo``, ``serve``, ``ingest``, ``backfill``, ``token``, ``user``, ``smart``, ``cds`` and ``deadletters`` are named
in :data:`COMMANDS` (name → ``module:function``), which :mod:`priorscan.cli` reads through the front of ``api``.
The administration commands (:mod:`api.cli.admin_cli`) and the demo (:mod:`api.cli.demo`) live here; the others
are served by the edge they start (:mod:`api.http.server`; :mod:`api.feeds.ingest` for ``ingest`` and ``backfill``;
:mod:`api.feeds.deadletters`). Modules are imported when a command is called, so that ``priorscan --help`` stays
quick.
"""

from __future__ import annotations

#: The command-line entry points ``api`` offers: name → ``module:function`` within ``api`` (imported when called).
COMMANDS: dict[str, str] = {
    "run_demo": "api.cli.demo:run_demo",
    "run_serve": "api.http.server:run_serve",
    "run_ingest": "api.feeds.ingest:run_ingest",
    "run_token_create": "api.cli.admin_cli:run_token_create",
    "run_token_revoke": "api.cli.admin_cli:run_token_revoke",
    "run_smart_register": "api.cli.admin_cli:run_smart_register",
    "run_smart_disable": "api.cli.admin_cli:run_smart_disable",
    "run_user_create": "api.cli.admin_cli:run_user_create",
    "run_cds_trust": "api.cli.admin_cli:run_cds_trust",
    "run_deadletters_list": "api.feeds.deadletters:run_list",
    "run_deadletters_replay": "api.feeds.deadletters:run_replay",
}

__all__ = ["COMMANDS"]
