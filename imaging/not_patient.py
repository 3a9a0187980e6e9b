"""Studies that are not the examination of a patient: QA, QC, physics, phantom, calibration and service tests.

A scanner's daily QA, a physicist's phantom measurement or an engineer's service exposure reaches the PACS, and so
the index, like any study. It must not be offered as a comparable prior of a patient's request, nor enter dose
audits against the national DRLs (a phantom dose says nothing about patients). OpenREM calls the configurable
patterns that pick them out "not patient indicators"; this module is priorscan's (pure: no I/O).

What says so, each recorded as evidence ``field: what it said``:

- the DICOM standard's own flags: Quality Control Subject (0010,0200) or Quality Control Image (0028,0300) ``YES``;
- the words of :data:`TEST_WORDS` as whole words (an underscore separates words: ``MONTHLY_QC``) in the study,
  series, performed and requested procedure descriptions, protocol names, Body Part Examined, a dose report's
  Procedure Reported, Acquisition Protocols and Comments;
- the patient name, by whole words of the indicators configured (:class:`priorscan.trusts.NotPatientIndicators`:
  consortium-wide and per trust), and the patient ID by configured prefixes. Only the matching word or prefix is
  recorded, never the name or the identifier.

A word inside another word says nothing (``QAISER``, ``AQUARIUS``, ``QUALITATIVE``), nor does a clinical word that
merely resembles one (``quality`` alone, ``phantom limb``, a calibration marker on a hip film). A study without such
evidence is taken as a patient's examination, as before: nothing is guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

#: Words and phrases by which a description says the study is a test, not a patient's examination.
TEST_WORDS = ("QA", "QC", "PHYSICS", "PHANTOM", "QUALITY CONTROL", "QUALITY ASSURANCE", "TEST OBJECT",
              "CALIBRATION", "CONSTANCY", "ACCEPTANCE TEST", "COMMISSIONING", "SERVICE MODE", "SERVICE TEST",
              "FIELD SERVICE")
#: What, next to a test word, shows the text is about a patient after all: a phantom limb (pain), a calibration
#: marker or ball placed on a patient for orthopaedic templating.
_CLINICAL_CONTEXT = re.compile(r"(?<![A-Z0-9])(PHANTOM LIMBS?|CALIBRATION (MARKER|BALL|SPHERE|DISC|DISK)S?|"
                               r"TEMPLAT\w*)(?![A-Z0-9])")
_MAX_EVIDENCE = 300


def _words_pattern(words: Iterable[str]) -> re.Pattern[str] | None:
    cleaned = sorted({w.strip().upper().replace("_", " ") for w in words if w and w.strip()}, key=len, reverse=True)
    if not cleaned:
        return None
    alternatives = "|".join(r"\s+".join(re.escape(part) for part in word.split()) for word in cleaned)
    return re.compile(rf"(?<![A-Z0-9])({alternatives})(?![A-Z0-9])")


_TEST_PATTERN = _words_pattern(TEST_WORDS)


def _plain(text: str) -> str:
    """Upper case, with the separators devices write (``_``, ``^``, ``/``, ``-``) as spaces."""
    return re.sub(r"[_^/\\\-.,;:()\[\]]+", " ", text.upper())


def named_test_word(text: str | None) -> str | None:
    """The test word ``text`` names as a whole word (see :data:`TEST_WORDS`), or None.

    >>> [named_test_word(t) for t in ("Daily QA", "MONTHLY_QC", "CT QUALITATIVE PERFUSION", "QAB")]
    ['QA', 'QC', None, None]
    """
    if not text or _TEST_PATTERN is None:
        return None
    plain = _plain(text)
    if _CLINICAL_CONTEXT.search(plain):
        return None
    found = _TEST_PATTERN.search(plain)
    return " ".join(found.group(1).split()) if found else None


def name_word(name: str | None, words: Sequence[str]) -> str | None:
    """The first of ``words`` that ``name`` (a DICOM PN ``Family^Given``, or any text) holds as a whole word."""
    pattern = _words_pattern(words)
    if not name or pattern is None:
        return None
    found = pattern.search(_plain(name))
    return " ".join(found.group(1).split()) if found else None


def id_prefix(patient_id: str | None, prefixes: Sequence[str]) -> str | None:
    """The first of ``prefixes`` that ``patient_id`` starts with (case-insensitive), or None."""
    value = (patient_id or "").strip().upper()
    if not value:
        return None
    return next((p for p in prefixes if p.strip() and value.startswith(p.strip().upper())), None)


def evidence(texts: Iterable[tuple[str, str | None]], *, patient_name: str | None = None,
             patient_id: str | None = None, name_words: Sequence[str] = (), id_prefixes: Sequence[str] = (),
             flags: Iterable[tuple[str, str | None]] = ()) -> list[str]:
    """Where a study says it is not a patient's examination: ``field: what it said``; empty when nowhere.

    Parameters
    ----------
    texts
        ``(field, text)`` pairs: descriptions, protocol names, body part, a dose report's texts.
    patient_name, patient_id
        The patient name and ID the study was registered under (only the matching indicator is recorded).
    name_words, id_prefixes
        The configured indicators that apply (:meth:`priorscan.trusts.TrustRegistry.not_patient_indicators`).
    flags
        ``(field, value)`` of the standard's Quality Control Subject / Image attributes; ``YES`` says so.
    """
    found: list[str] = []
    for name, value in flags:
        if (value or "").strip().upper() == "YES":
            found.append(f"{name}: YES")
    for name, text in texts:
        if named_test_word(text):
            found.append(f"{name}: {' '.join(str(text).split())[:60]}")
    word = name_word(patient_name, name_words)
    if word:
        found.append(f"PatientName: indicator {word}")
    prefix = id_prefix(patient_id, id_prefixes)
    if prefix:
        found.append(f"PatientID: prefix {prefix.strip().upper()}")
    return list(dict.fromkeys(found))


def merge_evidence(stored: str | None, new: Sequence[str]) -> str | None:
    """The study's evidence with ``new`` added (``; ``-separated, each once, at most 300 characters)."""
    items = [e for e in (stored or "").split("; ") if e]
    for item in new:
        if item not in items:
            items.append(item)
    text = ""
    for item in items:
        candidate = f"{text}; {item}" if text else item
        if len(candidate) > _MAX_EVIDENCE:
            break
        text = candidate
    return text or stored or None
