"""Blocking: every hard case keeps at least one key in common; over-common keys are skipped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mpi_factories import match_record

from mpi.blocking import blocking_keys, pairs_from_keys
from mpi.comparisons import ResidenceComparison
from mpi.frames import frame_from_records
from mpi.normalise import MatchRecord


@pytest.mark.parametrize(("change", "why"), [
    ({"birth_date": "1978-14-03"}, "day and month transposed"),
    ({"given": "Whitfield", "family": "Eleanor"}, "names swapped"),
    ({"family": "Okafor", "nhs_number": None}, "married: new family name, no NHS number"),
    ({"birth_date": "1979-03-14", "nhs_number": None}, "birth year wrong"),
    ({"postcode": "TN2 5QR", "address": "4 Pembury Road", "nhs_number": None}, "moved house"),
    ({"given": "Ellie", "family": "Whitfeld", "birth_date": "1978-03-15", "nhs_number": None},
     "nickname, misspelt family name and a day out: the address still meets"),
    ({"given": "Nora", "family": "Okafor", "birth_date": "1987-03-14", "address": "12 Mil Lane, Guildford",
      "nhs_number": None}, "given and family names replaced, birth year wrong, an address word mistyped: "
                           "the postcode and the house number still meet"),
])
def test_hard_cases_share_a_key(change: dict, why: str) -> None:
    assert blocking_keys(match_record()) & blocking_keys(match_record(**change)), why


def test_keys_need_data() -> None:
    empty = match_record(nhs_number=None, family=None, given=None, birth_date=None, postcode=None, address=None)
    # the record's own key is all it has: it meets a record listing it as a further identifier (H-ID-61)
    assert blocking_keys(empty) == {"i:https://fhir.rtk.nhs.uk/Id/mrn|A1"}
    assert "n:9434765919" in blocking_keys(match_record())
    assert not any(k.startswith("n:") for k in blocking_keys(match_record(nhs_number="9434765918")))


def test_house_numbers_name_the_home() -> None:
    from mpi.blocking import house_numbers

    assert house_numbers("12 GUILDFORD LANE MILL") == ["12"]
    assert house_numbers("1 12 FLAT LANE MILL") == ["1", "12"]  # a flat and its building
    assert house_numbers("007 VILLA2 9 STREET") == ["7", "2"]  # leading zeros dropped, at most two
    assert house_numbers("COTTAGE LANE MILL ROSE") == [] and house_numbers(None) == []
    assert "ph:GU14AB:12" in blocking_keys(match_record())
    assert not any(k.startswith("ph:") for k in blocking_keys(match_record(address="Rose Cottage, Mill Lane")))
    assert not any(k.startswith("ph:") for k in blocking_keys(match_record(postcode=None)))


@pytest.mark.parametrize(("left", "right"), [
    ("05 Mill Lane, Guildford", "5 Mill Lane, Guildford"),  # a leading zero
    ("Flat 007, 2 Mill Lane", "Flat 7, 2 Mill Lane"),
    ("Villa2, 14 Mill Lane", "Villa 02, 14 Mill Lane"),
])
def test_one_reading_of_house_numbers(left: str, right: str) -> None:
    """The ``ph:`` keys and the residence comparison read house numbers with one function (H-ID-42): two addresses
    that share a ``ph:`` key because their numbers are one are one home to the comparison too."""
    from mpi.blocking import house_numbers
    from mpi.comparisons import house_numbers as compared_numbers

    a, b = match_record(address=left), match_record(address=right)
    assert house_numbers(a.address) == list(compared_numbers(a.address)[:2])
    assert {k for k in blocking_keys(a) if k.startswith("ph:")} == {k for k in blocking_keys(b) if k.startswith("ph:")}
    frame = frame_from_records([a, b])
    residence = ResidenceComparison()
    found = int(residence.levels(frame.take(np.array([0])), frame.take(np.array([1])))[0])
    assert residence.labels[found] == "postcode-and-address"


def test_pairs_from_keys_dedupes_and_skips_over_common_keys() -> None:
    keys = pd.DataFrame({"key": ["a", "a", "b", "b", "c", "c", "c"], "row": np.array([0, 1, 0, 1, 2, 3, 4])})
    left, right = pairs_from_keys(keys, max_block_size=2)
    assert list(zip(left.tolist(), right.tolist(), strict=True)) == [(0, 1)]  # "c" (3 rows) is over the cap
    left, right = pairs_from_keys(keys, max_block_size=10)
    assert len(left) == 4


def test_key_table_builds_the_same_keys_as_one_record_at_a_time() -> None:
    from bench.mpi_population import make_population
    from mpi.blocking import key_table
    from mpi.frames import table_from_stored
    from mpi.normalise import to_match_record

    records = [to_match_record(i, d.__dict__) for i, d in enumerate(make_population(300, seed=2).records)]
    records.append(match_record(len(records), family="Smith-Jones Brown Green", given="Ann"))  # four words
    records.extend(_cross_referenced(len(records)))
    table = table_from_stored([r.record_id or 0 for r in records], [r.as_stored() for r in records])
    built = key_table(table)
    expected = {(key, row) for row, record in enumerate(records) for key in blocking_keys(record)}
    assert set(zip(built["key"], built["row"].tolist(), strict=True)) == expected


def _cross_referenced(first: int) -> list[MatchRecord]:
    """Records naming each other by identifiers other than the NHS number (``i:`` keys, H-ID-61): an RXC record, an
    RTK record listing its RXC number, a FHIR client's record carrying both, and one with a registry's number."""
    return [match_record(first, family="Ward", namespace="urn:rxc", local_id="123"),
            match_record(first + 1, family="Ward", namespace="urn:rtk", local_id="9",
                         other_identifiers=[("urn:rxc", "123")]),
            match_record(first + 2, family="Warde", namespace="urn:other", local_id="x",
                         other_identifiers=[("urn:rtk", "9"), ("urn:rxc", "123")]),
            match_record(first + 3, family="Hale", namespace="urn:febrl", local_id="rec-1",
                         other_identifiers=[("urn:febrl:soc-sec-id", "4455")])]


#: The digest of the keys of ``make_population(300, seed=2)``, four-word names and cross-references, made by the
#: scheme of that name.
KEYS_OF_SCHEME = ("2026-12-08 n d nm pf pg py a ph i", "4a567e3b9968c62f")


def test_the_key_scheme_changes_with_the_keys() -> None:
    """:data:`mpi.blocking.KEY_SCHEME` names what the stored keys are: a relink rewrites them only when it changes
    (H-ID-27), so a change to the keys without a new scheme would leave older records' keys as they were. If this
    fails after a change to the keys, give ``KEY_SCHEME`` a new name and record the new digest here."""
    import hashlib

    from bench.mpi_population import make_population
    from mpi.blocking import KEY_SCHEME, key_table
    from mpi.frames import table_from_stored
    from mpi.normalise import to_match_record

    records = [to_match_record(i, d.__dict__) for i, d in enumerate(make_population(300, seed=2).records)]
    records.append(match_record(len(records), family="Smith-Jones Brown Green", given="Ann"))  # four words
    records.extend(_cross_referenced(len(records)))
    table = table_from_stored([r.record_id or 0 for r in records], [r.as_stored() for r in records])
    built = key_table(table)
    keys = sorted(zip(built["row"].tolist(), built["key"], strict=True))
    digest = hashlib.sha256(repr(keys).encode()).hexdigest()[:16]
    assert (KEY_SCHEME, digest) == KEYS_OF_SCHEME


def test_integer_keys_group_rows_exactly_as_the_key_strings() -> None:
    from bench.mpi_population import make_population
    from mpi.blocking import blocked_pairs, key_codes, key_table
    from mpi.frames import frame_from_table, table_from_stored
    from mpi.normalise import to_match_record

    records = [to_match_record(i, d.__dict__) for i, d in enumerate(make_population(400, seed=4).records)]
    records.append(match_record(len(records), family="Smith-Jones Brown Green", given="Ann"))  # four words
    records.append(match_record(len(records), family="Ann", given="Smith-Jones"))  # swapped: the same nm key
    records.extend(_cross_referenced(len(records)))
    table = table_from_stored([r.record_id or 0 for r in records], [r.as_stored() for r in records])
    frame = frame_from_table(table)
    by_string = key_table(table).groupby("key")["row"].apply(frozenset)
    key, row = key_codes(frame)
    by_code = pd.Series(row).groupby(key).apply(frozenset)
    assert sorted(map(sorted, by_string)) == sorted(map(sorted, by_code))
    expected = pairs_from_keys(key_table(table), max_block_size=3)
    found = blocked_pairs(frame, max_block_size=3)
    assert set(zip(*expected, strict=True)) == set(zip(*found, strict=True)) and len(found[0]) > 0
