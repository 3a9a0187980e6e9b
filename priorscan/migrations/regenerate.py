"""Regenerate the initial migration from the current table modules (pre-release only).

``python -m priorscan.migrations.regenerate`` (or ``make migration``) rewrites ``versions/0001_initial.py`` by
autogenerating against an empty SQLite store. Once a release has shipped, add new revisions instead.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command

from priorscan.db import alembic_config, load_table_modules

VERSIONS = Path(__file__).parent / "versions"


def main() -> None:
    load_table_modules()
    for old in VERSIONS.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = alembic_config(f"sqlite:///{tmp}/empty.db")
        command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
    for made in VERSIONS.glob("0001_*.py"):
        made.rename(VERSIONS / "0001_initial.py")
    print("wrote", VERSIONS / "0001_initial.py")


if __name__ == "__main__":
    main()
