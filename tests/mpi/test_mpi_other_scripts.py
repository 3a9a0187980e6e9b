"""Names written in other scripts are names: compared, not dropped (hazard log H-ID-50).

The names are pydicom's public character-set test files (``pydicom/data/charset_files``), as pydicom reads them.
Before, a name was cleaned to ASCII letters only, so a Greek, Hebrew, Arabic, Chinese, Japanese or Korean name was
no name at all: different people sharing a birth date, sex and address (a family's relatives, a shared home) were
then put to review as possible matches of each other on those alone, and the duplicate check showed one's priors
against the other as a probable identity.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pydicom
import pytest
from mpi_factories import TRUST_A, TRUST_B, demographics
from pydicom.data import get_charset_files

from mpi import MATCH, POSSIBLE, PatientIndex
from mpi.names import name_words

#: pydicom's file and the component group of its Patient Name (0 alphabetic, 1 ideographic).
NAMED_IN_OTHER_SCRIPTS = [("chrGreek.dcm", 0), ("chrHbrw.dcm", 0), ("chrArab.dcm", 0), ("chrX1.dcm", 1),
                          ("chrH31.dcm", 1), ("chrI2.dcm", 2), ("chrRuss.dcm", 0)]


def _name(file_name: str, group: int) -> tuple[str, str | None]:
    path = next(Path(p) for p in get_charset_files(file_name))
    family, _, rest = pydicom.dcmread(path).PatientName.components[group].partition("^")
    return family, rest.split("^")[0] or None


@pytest.mark.parametrize(("file_name", "group"), NAMED_IN_OTHER_SCRIPTS)
def test_a_name_in_another_script_keeps_its_words(file_name: str, group: int) -> None:
    family, given = _name(file_name, group)
    assert name_words(family) and name_words(family) == name_words(family.upper())
    assert given is None or name_words(given)


@pytest.mark.parametrize(("raw", "words"), [
    ("Διονύσιος", ("ΔΙΟΝΥΣΙΟΣ",)),  # Greek accents (tonos) folded as Latin ones are
    ("Đorđević", ("DORDEVIC",)),  # a Latin letter Unicode does not decompose
    ("山田-太郎", ("山田", "太郎")),  # a hyphen still separates words
    ("Łukasz 2nd", ("LUKASZ", "ND")),  # digits still separate words
])
def test_name_words_of_other_scripts(raw: str, words: tuple[str, ...]) -> None:
    assert name_words(raw) == words


def test_people_named_in_other_scripts_at_one_home_are_not_possible_matches(index: PatientIndex) -> None:
    # the files whose name has a given name: a record without one at a shared home is put to review by design
    # (a same-sex twin cannot be ruled out, tests/mpi/test_mpi_hard_cases.py)
    named = [(f, g) for f, g in NAMED_IN_OTHER_SCRIPTS if _name(f, g)[1]]
    assert len(named) == 5
    home = {"nhs_number": None, "nhs_verification": None, "birth_date": date(1980, 1, 1), "sex": "male",
            "phone": None}
    outcomes = []
    for n, (file_name, group) in enumerate(named):
        family, given = _name(file_name, group)
        outcomes.append(index.upsert(demographics(TRUST_A if n % 2 else TRUST_B, f"S{n}", family=family, given=given,
                                                  **home), event="ADT^A04", actor="test"))
    assert len({o.regional_id for o in outcomes}) == len(outcomes)
    assert [o.link_state for o in outcomes if o.link_state == POSSIBLE] == []


def test_one_person_named_in_greek_by_two_trusts_is_linked(index: PatientIndex) -> None:
    family, _ = _name("chrGreek.dcm", 0)  # Διονυσιος, written by the other trust with its accent
    a = index.upsert(demographics(TRUST_A, "G1", family=family, given="Γιώργος"), event="ADT^A04", actor="test")
    b = index.upsert(demographics(TRUST_B, "G2", family="Διονύσιος", given="ΓΙΩΡΓΟΣ", nhs_number=None,
                                  nhs_verification=None), event="ADT^A04", actor="test")
    assert b.regional_id == a.regional_id and b.link_state == MATCH


@pytest.mark.parametrize(("address", "normalised", "reason"), [
    ("Οδός Ερμού 12, Αθήνα", "12 ΑΘΗΝΑ ΕΡΜΟΥ ΟΔΟΣ", "Greek: street and town kept, accents folded (was 12 alone)"),
    ("ул. Тверская 7, Москва", "7 МОСКВА ТВЕРСКАЯ УЛ", "Cyrillic (was 7 alone)"),
    ("شارع ١٢", "12 شارع", "Arabic letters kept, Arabic-Indic digits as ASCII ones (was nothing)"),
    ("12 Rue de la Paix", "12 DE LA PAIX RUE", "Latin: as before"),
    ("Flat 3, 12 Zoë Court", "12 3 COURT FLAT ZOE", "Latin accents folded to ASCII, as before"),
])
def test_an_address_in_another_script_keeps_its_words(address: str, normalised: str, reason: str) -> None:
    from mpi.normalise import normalise_address

    assert normalise_address(address) == normalised, reason


def test_two_streets_in_another_script_with_one_house_number_do_not_agree() -> None:
    """H-ID-54: cut to ASCII, two Greek addresses were their house number alone, and agreed exactly."""
    from mpi.normalise import to_match_record

    one = to_match_record(1, {"address": "Οδός Ερμού 12, Αθήνα", "family": "Παπαδόπουλος"})
    other = to_match_record(2, {"address": "Λεωφόρος Κηφισίας 12, Μαρούσι", "family": "Παπαδόπουλος"})
    assert one.address and other.address and one.address != other.address
