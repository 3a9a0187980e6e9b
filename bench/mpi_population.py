"""A generic synthetic population for the MPI benchmarks and tests, independent of ``regionsynth``.

People live in households in the consortium's postcode areas; each has one to several source records across the
five trusts, some duplicated within a trust. Records carry the errors REFERENCE.md lists as the hard cases: typos,
nicknames, middle names used as first names, given/family swapped, surname change on marriage, double-barrelled
names written differently, day/month transposed, mistyped and missing NHS numbers, house moves; twins share family
name, birth date and address. Rates are parameters (:class:`ErrorRates`); nothing in :mod:`mpi` reads them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import lru_cache
from itertools import accumulate, islice

from mpi.nhs_number import check_digit
from mpi.records import Demographics

TRUSTS = ("RTK", "RXC", "RPC", "RA2", "RYR")
AREAS = ("GU", "KT", "TW", "RH", "BN", "TN")
LOCALES = (("en_GB", 60), ("en_IE", 8), ("en_US", 6), ("pl_PL", 4), ("it_IT", 3), ("de_DE", 3), ("fr_FR", 3),
           ("es_ES", 2), ("pt_PT", 2), ("ro_RO", 2), ("tr_TR", 2), ("nl_NL", 2), ("en_IN", 3))
NICKNAMES = {"WILLIAM": ("BILL", "WILL", "BILLY"), "ROBERT": ("BOB", "ROB", "BOBBY"), "ELIZABETH": ("LIZ", "BETH",
             "LIZZIE"), "MARGARET": ("MAGGIE", "PEGGY"), "JAMES": ("JIM", "JIMMY"), "RICHARD": ("DICK", "RICK"),
             "EDWARD": ("TED", "NED", "ED"), "CATHERINE": ("KATE", "CATH"), "THOMAS": ("TOM", "TOMMY"),
             "MICHAEL": ("MIKE", "MICK"), "JOSEPH": ("JOE",), "DANIEL": ("DAN", "DANNY"), "SUSAN": ("SUE",),
             "PATRICIA": ("PAT", "TRISH"), "JENNIFER": ("JENNY", "JEN"), "ANTHONY": ("TONY",),
             "CHRISTOPHER": ("CHRIS",),
             "MATTHEW": ("MATT",), "ALEXANDER": ("ALEX",), "SAMUEL": ("SAM",), "DAVID": ("DAVE",),
             "NICHOLAS": ("NICK",), "VICTORIA": ("VICKY", "TORI"), "REBECCA": ("BECKY",), "DEBORAH": ("DEBBIE",)}


@dataclass(frozen=True)
class ErrorRates:
    """Per-record chances of each error (defaults: judgement, in line with published registry error studies)."""

    typo_given: float = 0.03
    typo_family: float = 0.03
    nickname: float = 0.04
    middle_as_first: float = 0.01
    swapped_names: float = 0.005
    marriage_name: float = 0.04  # adult women, on later records
    double_barrel_variant: float = 0.3  # of people with double-barrelled names
    dob_transposed: float = 0.01
    dob_typo: float = 0.01
    nhs_missing: float = 0.12
    nhs_mistyped: float = 0.015
    nhs_verified: float = 0.75
    moved: float = 0.12
    postcode_typo: float = 0.01
    missing_field: float = 0.01
    within_trust_duplicate: float = 0.06
    twins: float = 0.015


@dataclass
class Person:
    person_id: str
    given: str
    middle: str | None
    family: str
    sex: str
    birth_date: date
    nhs_number: str
    postcode: str
    address: str
    phone: str | None
    previous_family: str | None = None
    twin_of: str | None = None


@dataclass
class Population:
    people: list[Person]
    records: list[Demographics]
    truth: list[tuple[str, str, str]] = field(default_factory=list)  # person_id, namespace, local_id


@lru_cache(maxsize=1)
def _name_pools() -> tuple[list[str], list[float], list[str], list[float], list[str], list[float]]:
    import importlib

    male: dict[str, float] = {}
    female: dict[str, float] = {}
    family: dict[str, float] = {}
    for locale, weight in LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for source, target in ((getattr(provider, "first_names_male", ()), male),
                               (getattr(provider, "first_names_female", ()), female),
                               (getattr(provider, "last_names", ()), family)):
            items = source.items() if isinstance(source, dict) else ((n, 1.0) for n in source)
            names = [(n, float(w)) for n, w in items]
            total = sum(w for _, w in names) or 1.0
            for rank, (name, w) in enumerate(names):
                if not name.isascii() and locale.startswith("en"):
                    continue
                target[name] = target.get(name, 0.0) + weight * (w / total) / (1 + rank * 0.01)
    return (list(male), list(male.values()), list(female), list(female.values()), list(family), list(family.values()))


@lru_cache(maxsize=1)
def _cumulative_pools() -> tuple[list[str], list[float], list[str], list[float], list[str], list[float]]:
    """:func:`_name_pools` with cumulative weights. ``rng.choices(names, cum_weights=...)`` draws exactly what
    ``rng.choices(names, weights)`` draws (CPython accumulates the weights, then bisects the same way) without
    summing some 10 000 weights on every draw, which was most of the generator's time."""
    male, male_w, female, female_w, family, family_w = _name_pools()
    return (male, list(accumulate(male_w)), female, list(accumulate(female_w)), family, list(accumulate(family_w)))


def _nhs_number(rng: random.Random, used: set[str]) -> str:
    while True:
        first = "999" + "".join(rng.choice("0123456789") for _ in range(6))
        check = check_digit(first)
        if check is not None and first + str(check) not in used:
            used.add(first + str(check))
            return first + str(check)


def _postcode(rng: random.Random) -> str:
    return (f"{rng.choice(AREAS)}{rng.randint(1, 35)} {rng.randint(0, 9)}"
            f"{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}")


_STREETS = ("High", "Church", "Station", "Mill", "London", "Park", "Victoria", "Green", "Manor", "Kings", "Queens",
            "Grange", "Orchard", "Chestnut", "Meadow", "Farm", "School", "Windmill", "Brook", "Elm", "Oak", "Ash",
            "Beech", "Willow", "Cedar", "Holly", "Hazel", "Heath", "Common", "Castle", "Abbey", "Priory", "Bridge")
_SUFFIXES = ("Road", "Street", "Lane", "Avenue", "Close", "Drive", "Way", "Gardens", "Crescent", "Place")
_TOWNS = ("Guildford", "Woking", "Chertsey", "Staines", "Crawley", "Horsham", "Brighton", "Hove", "Worthing",
          "Eastbourne", "Hastings", "Tunbridge Wells", "East Grinstead", "Redhill", "Reigate", "Epsom", "Kingston")


def _address(rng: random.Random) -> str:
    return f"{rng.randint(1, 240)} {rng.choice(_STREETS)} {rng.choice(_SUFFIXES)}, {rng.choice(_TOWNS)}"


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 3:
        return text
    i = rng.randrange(1, len(text))
    kind = rng.random()
    if kind < 0.3:
        return text[:i] + text[i + 1:]
    if kind < 0.6 and i < len(text) - 1:
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if kind < 0.8:
        return text[:i] + rng.choice("aeioulnrst") + text[i + 1:]
    return text[:i] + text[i] + text[i:]


def _iter_people(rng: random.Random, rates: ErrorRates, nhs_number: Callable[[int], str]) -> Iterator[Person]:
    """People household by household, without end; ``nhs_number(n)`` names the n-th person's NHS number."""
    male, male_w, female, female_w, family_names, family_w = _cumulative_pools()
    made = 0
    while True:
        family = rng.choices(family_names, cum_weights=family_w)[0]
        if rng.random() < 0.02:
            family = f"{family}-{rng.choices(family_names, cum_weights=family_w)[0]}"
        postcode, address = _postcode(rng), _address(rng)
        phone = f"01{rng.randint(200, 999)} {rng.randint(100000, 999999)}" if rng.random() < 0.6 else None
        size = rng.choices((1, 2, 3, 4), (0.35, 0.35, 0.15, 0.15))[0]
        twins = rng.random() < rates.twins * 2 and size >= 2
        previous: Person | None = None
        for member in range(size):
            sex = rng.choice("MF")
            given_pool, weights = (male, male_w) if sex == "M" else (female, female_w)
            given = rng.choices(given_pool, cum_weights=weights)[0]
            middle = rng.choices(given_pool, cum_weights=weights)[0] if rng.random() < 0.5 else None
            twin = twins and member == 1 and previous is not None
            if twin:
                assert previous is not None
                birth = previous.birth_date
                while given == previous.given:
                    given = rng.choices(given_pool, cum_weights=weights)[0]
            else:
                birth = date(1925, 1, 1) + timedelta(days=rng.randrange(0, 365 * 99))
            person = Person(f"P{made:07d}", given, middle, family, sex, birth, nhs_number(made), postcode, address,
                            phone, twin_of=previous.person_id if twin and previous is not None else None)
            made += 1
            yield person
            previous = person


#: The most people given NHS numbers drawn from the 999 test range (which holds some 900 000 valid numbers, drawn
#: without repeats: near it the draws would not end); a larger population numbers its people as
#: :func:`stream_population` does (:func:`streamed_nhs_number`), so up to 10 million people can be made.
TEST_RANGE_PEOPLE = 600_000


def make_people(count: int, rng: random.Random, rates: ErrorRates) -> list[Person]:
    if count > TEST_RANGE_PEOPLE:
        return list(islice(_iter_people(rng, rates, streamed_nhs_number), count))
    used: set[str] = set()
    return list(islice(_iter_people(rng, rates, lambda _: _nhs_number(rng, used)), count))


def streamed_nhs_number(person: int) -> str:
    """A valid NHS number (modulus 11) for the ``person``-th person, distinct for up to 10 million people and computed
    from the index alone (no set of the numbers used, so a streamed population's memory does not grow). The
    numbers begin with 9 (90 000 000 to 99 999 999 before the last base digit): not the 999 test range, which
    holds under a million of them."""
    if not 0 <= person < 10_000_000:
        raise ValueError("streamed NHS numbers are distinct for up to 10 million people")
    stem = f"{90_000_000 + (person * 7_919) % 10_000_000:08d}"  # 7 919 is prime to 10^7: one stem per person
    for last in range(10):  # at most one of the ten last digits makes the check digit 10
        check = check_digit(stem + str(last))
        if check is not None:
            return f"{stem}{last}{check}"
    raise AssertionError("unreachable: nine of ten last digits give a check digit")


def _record_of(person: Person, rng: random.Random, rates: ErrorRates, namespace: str, local_id: str, trust: str,
               later: bool) -> Demographics:
    given, family, middle = person.given, person.family, person.middle
    if later and person.previous_family:
        family = person.previous_family if rng.random() < 0.5 else family
    if "-" in family and rng.random() < rates.double_barrel_variant:
        family = rng.choice((family.replace("-", " "), family.split("-")[0], family.split("-")[1],
                             family.replace("-", "")))
    if rng.random() < rates.nickname and given.upper() in NICKNAMES:
        given = rng.choice(NICKNAMES[given.upper()]).title()
    if rng.random() < rates.middle_as_first and middle:
        given, middle = middle, None
    if rng.random() < rates.typo_given:
        given = _typo(rng, given)
    if rng.random() < rates.typo_family:
        family = _typo(rng, family)
    if rng.random() < rates.swapped_names:
        given, family = family, given
    birth: date | str = person.birth_date
    if rng.random() < rates.dob_transposed and person.birth_date.day <= 12 and person.birth_date.day != \
            person.birth_date.month:
        birth = f"{person.birth_date.year}-{person.birth_date.day:02d}-{person.birth_date.month:02d}"
    elif rng.random() < rates.dob_typo:
        d = person.birth_date
        birth = rng.choice((f"{d.year + rng.choice((-1, 1, 10, -10))}-{d.month:02d}-{d.day:02d}",
                            f"{d.year}-{d.month:02d}-{max(1, min(28, d.day + rng.choice((-1, 1, 10))))}"))
    nhs: str | None = person.nhs_number
    if rng.random() < rates.nhs_missing:
        nhs = None
    elif rng.random() < rates.nhs_mistyped:
        i = rng.randrange(10)
        nhs = nhs[:i] + str((int(nhs[i]) + rng.randint(1, 9)) % 10) + nhs[i + 1:]
    postcode, address = person.postcode, person.address
    if rng.random() < rates.moved:
        postcode, address = _postcode(rng), _address(rng)
    elif rng.random() < rates.postcode_typo:
        postcode = _typo(rng, postcode)
    if rng.random() < 0.2:
        address = address.replace("Road", "Rd").replace("Street", "St").replace(",", "")
    record = Demographics(namespace=namespace, local_id=local_id, trust_ods=trust, nhs_number=nhs,
                          nhs_verification="01" if nhs and rng.random() < rates.nhs_verified else ("02" if nhs else
                                                                                                   None),
                          family=family, given=" ".join(x for x in (given, middle) if x), birth_date=birth,
                          sex={"M": "male", "F": "female"}[person.sex], postcode=postcode, address=address,
                          phone=person.phone)
    if rng.random() < rates.missing_field:
        record = replace(record, **{rng.choice(("postcode", "address", "sex", "given")): None})
    return record


def _person_records(person: Person, rng: random.Random, rates: ErrorRates, records_per_person: tuple[float, ...],
                    name: Callable[[str], tuple[str, str]]) -> list[Demographics]:
    """A person's source records (``records_per_person``: the weights of 1, 2, ... trusts), a later one sometimes in
    the same trust again; ``name(trust)`` gives each its (namespace, local id). May change the person's family name
    (marriage)."""
    if person.sex == "F" and rng.random() < rates.marriage_name * 2.5:
        person.previous_family = person.family
        person.family = rng.choices(_cumulative_pools()[4], cum_weights=_cumulative_pools()[5])[0]
    count = rng.choices(range(1, len(records_per_person) + 1), records_per_person)[0]
    trusts = rng.sample(TRUSTS, count)
    if rng.random() < rates.within_trust_duplicate:
        trusts.append(trusts[0])
    return [_record_of(person, rng, rates, *name(trust), trust, later=n > 0) for n, trust in enumerate(trusts)]


def make_population(people: int, *, seed: int = 1, rates: ErrorRates | None = None,
                    records_per_person: tuple[float, ...] = (0.45, 0.35, 0.15, 0.05)) -> Population:
    """``people`` people with their source records (about 1.8 records per person) and the truth. NHS numbers from
    the 999 test range up to :data:`TEST_RANGE_PEOPLE` people, numbered by index beyond (:func:`make_people`)."""
    rng = random.Random(seed)
    rates = rates or ErrorRates()
    persons = make_people(people, rng, rates)
    records: list[Demographics] = []
    truth: list[tuple[str, str, str]] = []
    counter = 0

    def name(trust: str) -> tuple[str, str]:
        nonlocal counter
        counter += 1
        return f"https://fhir.{trust.lower()}.nhs.uk/Id/mrn", f"{trust}{counter:08d}"

    for person in persons:
        for record in _person_records(person, rng, rates, records_per_person, name):
            records.append(record)
            truth.append((person.person_id, record.namespace, record.local_id))
    order = list(range(len(records)))
    rng.shuffle(order)
    return Population(persons, [records[i] for i in order], [truth[i] for i in order])


#: Source records per person in a region's decade (weights of 1 to 5 of the five trusts; with the within-trust
#: duplicates, about 2.7 records per person: issue 18's 4 M records for 1.5 M people).
DECADE_RECORDS_PER_PERSON = (0.17, 0.30, 0.30, 0.15, 0.08)


def stream_population(people: int, *, seed: int = 1, rates: ErrorRates | None = None,
                      records_per_person: tuple[float, ...] = DECADE_RECORDS_PER_PERSON,
                      name: Callable[[str], tuple[str, str]] | None = None
                      ) -> Iterator[tuple[Person, list[Demographics]]]:
    """The population of :func:`make_population`, person by person with their source records, in memory that does
    not grow with ``people``: NHS numbers from the person's index (:func:`streamed_nhs_number`, no set of those
    used), records in person order (a PAS extract's order, not shuffled) and nothing kept once yielded.
    Deterministic by ``seed``. ``name(trust)`` gives each record its (namespace, local id); by default the
    namespaces and numbering of :func:`make_population`."""
    rates = rates or ErrorRates()
    people_rng, records_rng = random.Random(seed), random.Random(f"records-{seed}")
    counter = 0

    def numbered(trust: str) -> tuple[str, str]:
        nonlocal counter
        counter += 1
        return f"https://fhir.{trust.lower()}.nhs.uk/Id/mrn", f"{trust}{counter:08d}"

    for person in islice(_iter_people(people_rng, rates, streamed_nhs_number), people):
        yield person, _person_records(person, records_rng, rates, records_per_person, name or numbered)


def iter_truth(population: Population) -> Iterator[tuple[tuple[str, str], str]]:
    for person_id, namespace, local_id in population.truth:
        yield (namespace, local_id), person_id
