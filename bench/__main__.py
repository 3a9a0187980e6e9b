"""Run one benchmark: ``python -m bench NAME [ARGS...]`` runs ``bench/bench_NAME.py``'s ``main(argv)``.

``python -m bench`` with no name lists them. Before and after the benchmark, the CPU time of a fixed pure-Python
loop is printed on standard error (:func:`host_speed`): on a shared virtual machine the CPU a process gets per
second varies, and a benchmark's figures mean little without it.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def available() -> list[str]:
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                  if m.name.startswith("bench_"))


def host_speed() -> float:
    """CPU seconds of a fixed loop (ten million squares summed): about 0.7 s on this project's machine when the
    host is quiet, and up to twice that when it is not."""
    started = time.process_time()
    sum(i * i for i in range(10_000_000))
    return time.process_time() - started


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bench NAME [ARGS...]\nbenchmarks: " + ", ".join(available()))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in available():
        print(f"unknown benchmark {name!r}; benchmarks: {', '.join(available())}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.bench_{name}")
    before = host_speed()
    status = int(module.main(rest) or 0)
    print(f"host speed: the calibration loop took {before:.2f} s of CPU before and {host_speed():.2f} s after "
          "(about 0.7 s on a quiet host)", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
