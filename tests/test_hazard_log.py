"""The hazard log (docs/clinical-safety/hazard-log.md) names tests that exist, and every hazard is complete.

A control without evidence is a claim: each hazard lists the tests that show its controls work, and this test fails
the suite when one of them is renamed or deleted.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / "docs" / "clinical-safety" / "hazard-log.md"
HEADINGS = ("**Cause**", "**Effect**", "**Harm**", "**Severity**", "**Likelihood before controls**", "**Controls**",
            "**Evidence**", "**Residual risk**", "**For the clinical safety officer**")
TEST_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[[^`]*\])?`")


def hazards() -> dict[str, str]:
    """Each hazard's id and its text, from ``### H-...`` headings."""
    text = LOG.read_text(encoding="utf-8")
    parts = re.split(r"^### (H-[A-Z0-9]+-\d+):", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


@cache
def defined_tests(path: str) -> frozenset[str]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return frozenset(node.name for node in ast.walk(tree)
                     if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"))


def test_every_hazard_has_every_heading_and_evidence() -> None:
    found = hazards()
    assert len(found) >= 2
    for hazard, text in found.items():
        missing = [h for h in HEADINGS if h not in text]
        assert not missing, f"{hazard} lacks {missing}"
        evidence = text.split("**Evidence**", 1)[1].split("**Residual risk**", 1)[0]
        assert TEST_ID.search(evidence), f"{hazard} names no test as evidence"


def test_every_test_named_as_evidence_exists() -> None:
    text = LOG.read_text(encoding="utf-8")
    ids = TEST_ID.findall(text)
    assert ids
    gone = [f"{path}::{name}" for path, name in ids
            if not (ROOT / path).is_file() or name not in defined_tests(path)]
    assert not gone, f"the hazard log names tests that do not exist: {gone}"


def test_hazard_ids_are_unique() -> None:
    text = LOG.read_text(encoding="utf-8")
    ids = re.findall(r"^### (H-[A-Z0-9]+-\d+):", text, flags=re.MULTILINE)
    assert len(ids) == len(set(ids))


def test_every_hazard_heading_is_read() -> None:
    """A heading whose id the pattern above does not match would be skipped silently (H-HL7-01 once was)."""
    text = LOG.read_text(encoding="utf-8")
    headings = re.findall(r"^### (H-\S+?):", text, flags=re.MULTILINE)
    assert len(headings) == len(hazards()), headings
