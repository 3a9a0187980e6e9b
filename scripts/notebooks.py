"""``make notebooks``: execute every analysts' notebook against a freshly generated region and render it to HTML.

    python scripts/notebooks.py [--people 2000] [--seed 3] [--as-of YYYY-MM-DD] [--work DIR] [--html docs/notebooks]

1. A synthetic five-trust region (``priorscan synth``) is ingested into a new SQLite store, linked, and its open
   alerts are answered by synthetic radiographers (:func:`api.cli.demo.act_on_alerts`), so that the alerts notebook
   has outcomes to show.
2. Each ``notebooks/*.ipynb`` is executed with papermill (its ``parameters`` cell given the store's URL), and
   fails the run on any error or when it shows no figure.
3. The executed notebooks are rendered to HTML with their figures into ``docs/notebooks/``.

The test suite runs the same steps on a small region (``tests/test_notebooks.py``).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def build_region(work: Path, *, people: int, seed: int, as_of: date, url: str | None = None) -> str:
    """A store holding a synthetic region, linked, with its alerts answered; its URL.

    Without ``url`` the store is a fresh SQLite file in ``work``; with one (an empty, migrated store, for example
    PostgreSQL) the region is loaded there."""
    from api.cli.demo import act_on_alerts
    from api.context import AppContext
    from priorscan.cli import main
    from priorscan.settings import Settings

    work.mkdir(parents=True, exist_ok=True)
    region = work / "region"
    if url is None:
        db = work / "analytics.db"
        for stale in (db, db.with_suffix(".db-wal"), db.with_suffix(".db-shm")):
            stale.unlink(missing_ok=True)
        url = f"sqlite:///{db}"
    if not (region / "truth").is_dir():
        if main(["synth", "--people", str(people), "--out", str(region), "--seed", str(seed), "--as-of",
                 as_of.isoformat()]) != 0:
            raise SystemExit("synth failed")
    inputs = [str(p) for p in sorted(region.iterdir()) if p.name != "truth"]
    if main(["--db", url, "ingest", "--no-progress", *inputs]) not in (0, 1):
        raise SystemExit("ingest failed")
    if main(["--db", url, "link"]) != 0:
        raise SystemExit("link failed")
    context = AppContext.open(Settings(db=url))
    try:
        act_on_alerts(context, seed=seed)
    finally:
        context.engine.dispose()
    return url


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def execute(notebook: Path, out_dir: Path, parameters: dict[str, Any], *, timeout: int = 600) -> Any:
    """Run ``notebook`` with ``parameters`` (papermill) into ``out_dir``, which is also its working directory (what
    a notebook writes, such as the identity report's images, stays there); the executed notebook."""
    import nbformat
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / notebook.name
    papermill.execute_notebook(str(notebook), str(target), parameters=parameters, kernel_name="python3",
                               cwd=str(out_dir), progress_bar=False, execution_timeout=timeout, log_output=False)
    return nbformat.read(target, as_version=4)


def figures(executed: Any) -> int:
    """How many figures (PNG or SVG outputs) an executed notebook shows."""
    return sum(1 for cell in executed.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
               if {"image/png", "image/svg+xml"} & set(output.get("data", {})))


def output_text(executed: Any) -> str:
    """Everything an executed notebook shows as text (streams, tables, HTML), for checks on what leaves the store."""
    parts: list[str] = []
    for cell in executed.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            parts.append(str(output.get("text", "")))
            for kind, value in output.get("data", {}).items():
                if kind.startswith("text/"):
                    parts.append(value if isinstance(value, str) else "".join(value))
    return "\n".join(parts)


def render_html(executed_path: Path, html_dir: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    html_dir.mkdir(parents=True, exist_ok=True)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.read(executed_path, as_version=4))
    target = html_dir / executed_path.with_suffix(".html").name
    target.write_text(body, encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date.today())
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "notebooks")
    parser.add_argument("--html", type=Path, default=ROOT / "docs" / "notebooks")
    args = parser.parse_args(argv)
    url = build_region(args.work, people=args.people, seed=args.seed, as_of=args.as_of)
    failed = []
    for notebook in notebooks():
        executed = execute(notebook, args.work / "executed", {"db_url": url})
        shown = figures(executed)
        print(f"{notebook.name}: executed, {shown} figures")
        if shown == 0:
            failed.append(f"{notebook.name} shows no figure")
            continue
        print(f"  → {render_html(args.work / 'executed' / notebook.name, args.html)}")
    for problem in failed:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
