"""``priorscan synth``: write a synthetic five-trust region with its ground truth.

The command reads only the trust configuration (never the database) and writes every feed under ``--out``; the
same ``--seed`` and ``--as-of`` always give byte-identical output.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from priorscan.errors import InputError
from regionsynth.region import RegionRequest, generate_region


def _as_of(args: argparse.Namespace) -> date:
    text = getattr(args, "as_of", None)
    if not text:
        return date.today()
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InputError("--as-of must be a date written YYYY-MM-DD", code="input.synth-as-of") from exc


def run_synth(args: argparse.Namespace, ctx) -> int:  # type: ignore[no-untyped-def]
    """Generate the region described by ``args`` (.people .out .seed .years, optional .as_of).

    Parameters
    ----------
    args
        The parsed ``priorscan synth`` arguments.
    ctx
        The command-line context; only its trust configuration is used.

    Returns
    -------
    int
        0 on success (errors are raised as :class:`priorscan.errors.PriorscanError` and reported by the CLI).
    """
    if args.years < 1:
        raise InputError("--years must be at least 1", code="input.synth-years")
    request = RegionRequest(out=Path(args.out), people=args.people, seed=args.seed, as_of=_as_of(args),
                            years=args.years)
    started = time.monotonic()

    reported = [0]

    def progress(done: int) -> None:
        """Report progress on standard error, every tenth of the way."""
        tenth = done * 10 // request.people
        if tenth > reported[0]:
            reported[0] = tenth
            print(f"  {done} of {request.people} people", file=sys.stderr, flush=True)

    manifest = generate_region(request, ctx.trusts, progress=progress if request.people >= 20_000 else None)
    counts = manifest["counts"]
    print(f"wrote a synthetic region to {request.out} in {time.monotonic() - started:.1f} s "
          f"(seed {request.seed}, as of {request.as_of.isoformat()})")
    print(f"  people {counts.get('people', 0)}, source records {counts.get('records', 0)}, "
          f"studies {counts.get('studies', 0)} (DICOM {counts.get('studies dicom', 0)}, "
          f"ORU {counts.get('studies oru', 0)}, FHIR {counts.get('studies fhir', 0)}), "
          f"DICOM files {counts.get('dicom files', 0)}, orders {counts.get('orders', 0)}")
    print(f"  ground truth in {request.out / 'truth'}")
    return 0
