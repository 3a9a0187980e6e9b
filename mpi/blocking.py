"""Blocking: the indexed keys that bring a record together with the few records worth scoring against it.

Each record gets a handful of keys; two records are compared only when they share one. The keys are chosen so that
each common kind of error leaves at least one key intact:

========  ====================================================  =========================================
key       made of                                               still meets the true record when ...
========  ====================================================  =========================================
``n:``    valid NHS number                                      names, birth date and address all differ
``d:``    birth year + {day, month} as a set + the first        one of the names changes (marriage, a
          sound of the given name (one key) or of the family    nickname) or is misspelt; day and month
          name (another key)                                    are transposed
``nm:``   {phonetic family word, phonetic given name} as a set  birth date is wrong; given/family swapped
``pf:``   postcode + phonetic family word                       birth date wrong and given name changed
``pg:``   postcode + phonetic given name                        birth date wrong and family name changed
``py:``   postcode + birth year                                 both names misspelt, day or month wrong
``a:``    the address (words sorted)                            names misspelt and postcode mistyped
``ph:``   postcode + a house (or flat) number of the address    names misspelt or changed, birth date
          (one key per number, at most two)                     wrong, and the address has a slip in a word
``i:``    an identifier other than the NHS number: the record's  everything else differs; one record names
          own key and each further one (:mod:`mpi.identifier_    the other (a cross-reference) or both carry
          systems`)                                             one registry's number (H-ID-61)
========  ====================================================  =========================================

A key shared by more than :data:`MAX_BLOCK_SIZE` records (a placeholder birth date, a very common name at one
postcode) says too little to be worth scoring: it is skipped, both in real time and in batch, so an incoming
record meets a bounded candidate set. Blocking recall (the share of true pairs that share a usable key) is
measured by ``priorscan evaluate``.

The ``ph:`` key is the home: in the UK a postcode holds about fifteen addresses, and a house or flat number picks
one of them (as the Royal Mail's address file does), so the key holds the records of one household, which the
``pf:`` key mostly meets already. It meets a person registered again at the same home with a name misspelt or
changed, the birth date wrong and a slip in any word of the address, where ``a:`` (the whole address) is lost.
One key per number (a flat and its building's number give two), so it costs link-on-write about one more key
per record; an address without a number gives none.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mpi.comparisons import house_numbers as comparison_house_numbers
from mpi.frames import Frame
from mpi.identifier_systems import all_tokens
from mpi.normalise import MatchRecord

#: What the stored keys are: change it with any change to what :func:`keys_of` and :func:`key_table` make (a kind
#: added, withdrawn or made otherwise), and every store's next relink rewrites its records' keys (H-ID-27;
#: ``tests/mpi/test_mpi_blocking.py`` holds a digest of the keys of a fixed population to it), or to the normalised
#: fields they are made of (``c``: ZZ99 pseudo-postcodes and "no fixed abode" addresses are none, H-ID-33; ``d``:
#: addresses keep the letters of other scripts, H-ID-54).
KEY_SCHEME = "2026-12-08 n d nm pf pg py a ph i"
#: A key shared by more records than this is skipped.
MAX_BLOCK_SIZE = 100
#: Family-name words used for keys (double-barrelled names give one key per word).
MAX_FAMILY_WORDS = 3
#: House and flat numbers of an address used for ``ph:`` keys (a flat's number and its building's).
MAX_HOUSE_NUMBERS = 2


def house_numbers(address: str | None) -> list[str]:
    """The house and flat numbers of a normalised address for ``ph:`` keys: the first
    :data:`MAX_HOUSE_NUMBERS` of :func:`mpi.comparisons.house_numbers` (the comparisons' own reading, so an address
    whose numbers share a key is one home to the residence comparison too)."""
    return list(comparison_house_numbers(address)[:MAX_HOUSE_NUMBERS])


def keys_of(nhs_number: str | None, nhs_valid: bool, birth_year: int, birth_month: int, birth_day: int,
            family_ph: str | None, given_ph: str | None, postcode: str | None, address: str | None = None,
            identifiers: str | None = None) -> set[str]:
    """The blocking keys of one record's normalised fields."""
    keys: set[str] = set()
    if nhs_number and nhs_valid:
        keys.add(f"n:{nhs_number}")
    family_words = family_ph.split(" ")[:MAX_FAMILY_WORDS] if family_ph else []
    if birth_year and birth_month and birth_day:
        low, high = sorted((birth_month, birth_day))
        born = f"{birth_year}{low:02d}{high:02d}"
        # with swapped names, the given name's sound is the family name's: both keys hold either
        initials = {given_ph[:1] if given_ph else "", family_words[0][:1] if family_words else ""} - {""}
        for initial in initials:
            keys.add(f"d:{born}:{initial}")
    if given_ph:
        for word in family_words:
            first, second = sorted((word, given_ph))
            keys.add(f"nm:{first}:{second}")
    if postcode:
        code = postcode.replace(" ", "")
        for word in family_words:
            keys.add(f"pf:{code}:{word}")
        if given_ph:
            keys.add(f"pg:{code}:{given_ph}")
        if birth_year:
            keys.add(f"py:{code}:{birth_year}")
        keys.update(f"ph:{code}:{number}" for number in house_numbers(address))
    if address:
        keys.add(f"a:{address}")
    keys.update(f"i:{token}" for token in all_tokens(identifiers))
    return {key[:80] for key in keys}


def blocking_keys(record: MatchRecord) -> set[str]:
    """The blocking keys of ``record``."""
    return keys_of(record.nhs_number, record.nhs_valid, record.birth_year, record.birth_month, record.birth_day,
                   record.family_ph, record.given_ph, record.postcode, record.address, record.identifiers)


def key_table(table: pd.DataFrame) -> pd.DataFrame:
    """``(key, row)`` for every key of every row of a records table (columns of :class:`MatchRecord`).

    The same keys as :func:`keys_of`, built column-wise with pandas (a test holds the two to each other).
    """
    n = len(table)
    rows = pd.Series(np.arange(n, dtype=np.int64))

    def column(name: str) -> pd.Series:
        if name not in table:
            return pd.Series([""] * n, dtype=object)
        return table[name].fillna("").astype(str).reset_index(drop=True)

    def number(name: str) -> pd.Series:
        return table[name].fillna(0).astype(np.int64).reset_index(drop=True) if name in table else pd.Series(
            np.zeros(n, dtype=np.int64))

    parts: list[pd.DataFrame] = []

    def add(keys: pd.Series, where: pd.Series) -> None:
        where = where.to_numpy(dtype=bool)
        parts.append(pd.DataFrame({"key": keys[where].to_numpy(dtype=object), "row": rows[where].to_numpy()}))

    nhs = column("nhs_number")
    valid = table["nhs_valid"].eq(True).reset_index(drop=True) if "nhs_valid" in table else \
        pd.Series(np.zeros(n, dtype=bool))
    add("n:" + nhs, valid & (nhs != ""))
    year, month, day = number("birth_year"), number("birth_month"), number("birth_day")
    low, high = np.minimum(month, day), np.maximum(month, day)
    born = (year * 10000 + low * 100 + high).astype(str).str.zfill(8)
    full = (year > 0) & (month > 0) & (day > 0)
    family_ph, given_ph = column("family_ph"), column("given_ph")
    given_initial = given_ph.str[:1]
    family_initial = family_ph.str[:1]
    add("d:" + born + ":" + given_initial, full & (given_initial != ""))
    add("d:" + born + ":" + family_initial, full & (family_initial != "") & (family_initial != given_initial))
    words = family_ph.str.split(" ", n=MAX_FAMILY_WORDS, expand=True)  # a column past the third holds the rest
    code = column("postcode").str.replace(" ", "", regex=False)
    has_code = code != ""
    for index in range(min(MAX_FAMILY_WORDS, words.shape[1])):
        word = words[index].fillna("").astype(str)
        has_word = word != ""
        first = np.where(word.to_numpy(dtype=object) <= given_ph.to_numpy(dtype=object), word, given_ph)
        second = np.where(word.to_numpy(dtype=object) <= given_ph.to_numpy(dtype=object), given_ph, word)
        add("nm:" + pd.Series(first, dtype=object) + ":" + pd.Series(second, dtype=object),
            has_word & (given_ph != ""))
        add("pf:" + code + ":" + word, has_word & has_code)
    add("pg:" + code + ":" + given_ph, has_code & (given_ph != ""))
    add("py:" + code + ":" + year.astype(str), has_code & (year > 0))
    address = column("address")
    add("a:" + address, address != "")
    distinct = address.drop_duplicates().tolist()
    found = [house_numbers(value) for value in distinct]
    for slot in range(MAX_HOUSE_NUMBERS):
        number_of = pd.Series([numbers[slot] if len(numbers) > slot else "" for numbers in found], index=distinct,
                              dtype=object)
        number = pd.Series(number_of.reindex(address.to_numpy()).to_numpy(dtype=object), dtype=object).fillna("")
        add("ph:" + code + ":" + number, has_code & (number != ""))
    tokens = column("identifiers").map(all_tokens).explode().dropna()
    parts.append(pd.DataFrame({"key": ("i:" + tokens.astype(str)).to_numpy(dtype=object),
                               "row": rows[tokens.index].to_numpy()}))
    keys = pd.concat(parts, ignore_index=True)
    keys["key"] = keys["key"].str[:80]
    return keys.drop_duplicates(ignore_index=True)


def pairs_from_keys(keys: pd.DataFrame, *, max_block_size: int = MAX_BLOCK_SIZE) -> tuple[NDArray[np.int64],
                                                                                         NDArray[np.int64]]:
    """Every pair of rows ``(i < j)`` that shares a key of at most ``max_block_size`` rows, once."""
    codes, _ = pd.factorize(keys["key"])
    return _pairs_of_blocks(codes, keys["row"].to_numpy(), max_block_size)


def pairs_within_runs(sorted_keys: NDArray[Any], max_size: int) -> Iterator[tuple[NDArray[np.int64],
                                                                              NDArray[np.int64]]]:
    """Positions ``(i < j)`` of every two elements of each run of equal ``sorted_keys`` that has 2 to ``max_size``
    elements, one chunk per run size (first positions, second positions): pairs without a loop over runs."""
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, len(sorted_keys)])
    for size in np.unique(sizes):
        if size < 2 or size > max_size:
            continue
        run_starts = starts[sizes == size]
        a, b = np.triu_indices(int(size), k=1)
        yield (run_starts[:, None] + a).ravel(), (run_starts[:, None] + b).ravel()


def _pairs_of_blocks(codes: NDArray[Any], rows: NDArray[Any], max_block_size: int
                     ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    order = np.argsort(codes, kind="stable")
    rows = rows[order]
    left_parts: list[NDArray[np.int64]] = []
    right_parts: list[NDArray[np.int64]] = []
    for first, second in pairs_within_runs(codes[order], max_block_size):
        left_parts.append(rows[first])
        right_parts.append(rows[second])
    if not left_parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    left = np.concatenate(left_parts)
    right = np.concatenate(right_parts)
    low, high = np.minimum(left, right), np.maximum(left, right)
    keep = low != high
    width = int(high.max()) + 1
    code = pd.unique(low[keep] * width + high[keep])  # hashing: far quicker than sorting millions of pairs
    return code // width, code % width



#: Bits per part of an integer key: kind (4 bits) | first part (29) | second part (29).
_PART_BITS = 29


def _vocab_codes(frame: Frame, name: str, prepare: Any = None) -> tuple[NDArray[np.int64], list[str]]:
    """Codes of column ``name`` over its distinct values (after ``prepare``; -1 where empty)."""
    vocab = [prepare(v) if prepare else v for v in frame.vocab[name].tolist()]
    index: dict[str, int] = {"": -1}
    per_value = np.asarray([index.setdefault(v, len(index) - 1) for v in vocab], dtype=np.int64)
    return per_value[frame[f"{name}__code"]], vocab


def key_codes(frame: Frame) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``(key, row)`` for every key of every row of a frame, as :func:`key_table` but with integer keys.

    The same keys as :func:`keys_of` (a test holds them to each other), built from the frame's value codes: string
    work is done once per distinct name, postcode or address, never once per row, and no key string is made. Two
    rows share a key here exactly when they share it in :func:`key_table` (keys longer than the stored 80
    characters aside: here they are compared whole, but for the address).
    """
    n = frame.size
    rows = np.arange(n, dtype=np.int64)
    # one vocabulary for every phonetic word (family words and given names): ``nm`` keys pair them as a set
    phonetic: dict[str, int] = {}
    given_vocab = frame.vocab["given_ph"].tolist()
    given_word = np.asarray([phonetic.setdefault(v, len(phonetic)) if v else -1 for v in given_vocab],
                            dtype=np.int64)[frame["given_ph__code"]]
    family_vocab = frame.vocab["family_ph"].tolist()
    word_codes = np.full((len(family_vocab), MAX_FAMILY_WORDS), -1, dtype=np.int64)
    for index, value in enumerate(family_vocab):
        for slot, word in enumerate(value.split(" ")[:MAX_FAMILY_WORDS] if value else []):
            word_codes[index, slot] = phonetic.setdefault(word, len(phonetic))
    family_words = word_codes[frame["family_ph__code"]]  # (rows, MAX_FAMILY_WORDS), -1 where none

    def initial(vocab: list[str], name: str) -> NDArray[np.int64]:
        return np.asarray([ord(v[0]) if v else -1 for v in vocab], dtype=np.int64)[frame[f"{name}__code"]]

    given_initial, family_initial = initial(given_vocab, "given_ph"), initial(family_vocab, "family_ph")
    code, _ = _vocab_codes(frame, "postcode", lambda v: v.replace(" ", ""))
    address, _ = _vocab_codes(frame, "address", lambda v: v[:78])
    nhs, _ = _vocab_codes(frame, "nhs_number")
    has_nhs = frame["nhs_valid"] & (nhs >= 0)
    year = frame["birth_year"].astype(np.int64)
    month, day = frame["birth_month"].astype(np.int64), frame["birth_day"].astype(np.int64)
    born = year * 10000 + np.minimum(month, day) * 100 + np.maximum(month, day)
    full = (year > 0) & (month > 0) & (day > 0)

    keys: list[NDArray[np.int64]] = []
    key_rows: list[NDArray[np.int64]] = []

    def add(kind: int, first: NDArray[np.int64], second: NDArray[np.int64], where: NDArray[np.bool_]) -> None:
        keys.append((kind << (2 * _PART_BITS)) | (first[where] << _PART_BITS) | second[where])
        key_rows.append(rows[where])

    zero = np.zeros(n, dtype=np.int64)
    add(0, nhs, zero, has_nhs)
    add(1, born, given_initial, full & (given_initial >= 0))
    add(1, born, family_initial, full & (family_initial >= 0) & (family_initial != given_initial))
    for slot in range(MAX_FAMILY_WORDS):
        word = family_words[:, slot]
        has_word = word >= 0
        add(2, np.minimum(word, given_word), np.maximum(word, given_word), has_word & (given_word >= 0))
        add(3, code, word, has_word & (code >= 0))
    add(4, code, given_word, (code >= 0) & (given_word >= 0))
    add(5, code, year, (code >= 0) & (year > 0))
    add(6, address, zero, address >= 0)
    # ph: the postcode with each house number, numbers coded over the distinct addresses
    number_index: dict[str, int] = {}
    by_address = np.full((len(frame.vocab["address"]), MAX_HOUSE_NUMBERS), -1, dtype=np.int64)
    for index, value in enumerate(frame.vocab["address"].tolist()):
        for slot, number in enumerate(house_numbers(value)):
            by_address[index, slot] = number_index.setdefault(number, len(number_index))
    numbers = by_address[frame["address__code"]] if len(by_address) else np.full((n, MAX_HOUSE_NUMBERS), -1)
    for slot in range(MAX_HOUSE_NUMBERS):
        add(7, code, numbers[:, slot], (code >= 0) & (numbers[:, slot] >= 0))
    # i: each identifier token (own key and further ones), coded over the distinct values of the column
    token_index: dict[str, int] = {}
    per_value = [[token_index.setdefault(token[:78], len(token_index)) for token in all_tokens(value)]
                 for value in frame.vocab["identifiers"].tolist()]
    counts = np.asarray([len(tokens) for tokens in per_value], dtype=np.int64)[frame["identifiers__code"]]
    if counts.sum():
        flat = np.asarray([token for tokens in per_value for token in tokens], dtype=np.int64)
        starts = np.r_[0, np.cumsum([len(tokens) for tokens in per_value])][frame["identifiers__code"]]
        holders = np.repeat(rows, counts)
        offsets = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        keys.append((8 << (2 * _PART_BITS)) | (flat[np.repeat(starts, counts) + offsets] << _PART_BITS))
        key_rows.append(holders)
    dense, _ = pd.factorize(np.concatenate(keys))
    width = max(n, 1)
    unique = pd.unique(dense.astype(np.int64) * width + np.concatenate(key_rows))  # a key twice for a row: once
    return unique // width, unique % width


def blocked_pairs(frame: Frame, *, max_block_size: int = MAX_BLOCK_SIZE
                  ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Every pair of rows ``(i < j)`` of a frame sharing a blocking key of at most ``max_block_size`` rows, once:
    ``pairs_from_keys(key_table(table))`` computed on integer keys (:func:`key_codes`)."""
    key, row = key_codes(frame)
    return _pairs_of_blocks(key, row, max_block_size)
