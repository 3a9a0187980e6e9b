"""Benchmarks (``make bench``, ``python -m bench NAME``); results and commands are recorded in BENCHMARKS.md."""
