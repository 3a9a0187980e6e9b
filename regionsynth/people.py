"""The region's people as they truly are: names, sex, birth dates, addresses, NHS numbers, households and twins.

People are made household by household, so that families share a surname and an address and twins share a surname,
a birth date and an address while having different given names. Names come from Faker's ``en_GB`` tables: surnames
with their own frequency weights, given names with a Zipf weight by popularity rank, so that David, Susan and Smith
are as over-represented as they are in real populations. Ages follow the Census 2021 pyramid
(``data/population.toml``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from faker.providers.person.en_GB import Provider as PersonProvider

from regionsynth.geography import Address, Geography, WeightedChoice, population_table
from regionsynth.identifiers import NhsNumberAllocator
from regionsynth.settings import Volumes

_ZIPF_EXPONENT = 0.6


@dataclass(slots=True)
class Person:
    """One real person of the region: the truth every feed record is a (possibly wrong) copy of."""

    index: int
    person_id: str
    family_id: str
    role: str  # householder, partner, child, sharer
    given: str
    middle: str
    family: str
    sex: str  # F or M
    birth_date: date
    address: Address
    nhs_number: str | None
    previous_family: str | None = None  # surname before marriage
    married_on: date | None = None
    previous_address: Address | None = None
    moved_on: date | None = None
    twin_of: str | None = None
    twin_ids: list[str] = field(default_factory=list)

    def age_on(self, when: date) -> int:
        """Age in completed years on ``when``."""
        born = self.birth_date
        return when.year - born.year - ((when.month, when.day) < (born.month, born.day))

    def family_on(self, when: date) -> str:
        """The surname in use on ``when``."""
        if self.previous_family and self.married_on and when < self.married_on:
            return self.previous_family
        return self.family

    def address_on(self, when: date) -> Address:
        """The address lived at on ``when``."""
        if self.previous_address and self.moved_on and when < self.moved_on:
            return self.previous_address
        return self.address


def _zipf(names: tuple[str, ...] | list[str]) -> WeightedChoice:
    return WeightedChoice(list(names), [1.0 / (rank + 1) ** _ZIPF_EXPONENT for rank in range(len(names))])


class PopulationGenerator:
    """Makes households of people, deterministically from the random generator it is given.

    Parameters
    ----------
    volumes
        Shares of twins, moves, marriages and people without NHS numbers.
    as_of
        The date the region is described on; nobody is born after it.
    history_start
        First day of the feeds' history; house moves happen after it so that trusts can be told of them.
    geography
        Districts and addresses.
    nhs_numbers
        Allocator of NHS numbers from the 999 test range.
    """

    def __init__(self, volumes: Volumes, as_of: date, history_start: date, geography: Geography,
                 nhs_numbers: NhsNumberAllocator) -> None:
        self.volumes = volumes
        self.as_of = as_of
        self.history_start = history_start
        self.geography = geography
        self.nhs_numbers = nhs_numbers
        table = population_table()
        pyramid = {int(k): float(v) for k, v in table["age_pyramid"].items()}
        tilt = sorted((int(k), float(v)) for k, v in table["adult_tilt"].items())
        self._child_band = WeightedChoice([b for b in pyramid if b < 18], [w for b, w in pyramid.items() if b < 18])
        adult_bands, adult_weights = [], []
        for band, weight in pyramid.items():
            if band + 5 <= 18:
                continue
            share = weight * (0.4 if band == 15 else 1.0)  # 18 and 19 of the 15-19 band
            factor = next((f for lower, f in reversed(tilt) if band >= lower), 1.0)
            adult_bands.append(band)
            adult_weights.append(share * factor)
        self._adult_band = WeightedChoice(adult_bands, adult_weights)
        households = table["households"]
        self._household_kind = WeightedChoice(list(households), list(households.values()))
        self._children = WeightedChoice([1, 2, 3, 4], list(table["children"]["weights"]))
        self._female = _zipf(PersonProvider.first_names_female)
        self._male = _zipf(PersonProvider.first_names_male)
        surnames = PersonProvider.last_names
        self._surname = WeightedChoice(list(surnames), list(surnames.values()))

    # -- ages and names ----------------------------------------------------------------------------------------------
    def _adult_age(self, rng: random.Random) -> int:
        band = self._adult_band(rng)
        low = 18 if band == 15 else band
        high = 101 if band == 90 else band + 5
        return rng.randrange(low, high)

    def _child_age(self, rng: random.Random) -> int:
        band = self._child_band(rng)
        return rng.randrange(band, min(band + 5, 18))

    def _birth_date(self, rng: random.Random, age: int) -> date:
        latest = self.as_of.replace(year=self.as_of.year - age) if not (
            self.as_of.month == 2 and self.as_of.day == 29) else date(self.as_of.year - age, 2, 28)
        return latest - timedelta(days=rng.randrange(0, 365))

    def given_name(self, rng: random.Random, sex: str) -> str:
        """A given name for sex ``sex``, common names more often."""
        return (self._female if sex == "F" else self._male)(rng)

    def surname(self, rng: random.Random) -> str:
        """A surname by its frequency in Great Britain."""
        return self._surname(rng)

    def _middle(self, rng: random.Random, sex: str, given: str) -> str:
        if rng.random() >= self.volumes.middle_name_share:
            return ""
        middle = self.given_name(rng, sex)
        return "" if middle == given else middle

    # -- households --------------------------------------------------------------------------------------------------
    def household(self, rng: random.Random, household_number: int, first_index: int) -> list[Person]:
        """The people of one household, numbered from ``first_index``."""
        family_id = f"H{household_number:07d}"
        district = self.geography.district(rng)
        address = self.geography.address(rng, district)
        previous, moved_on = None, None
        if rng.random() < self.volumes.household_move_share:
            previous = self.geography.address(rng, self.geography.nearby_district(rng, district))
            span = max((self.as_of - self.history_start).days - 30, 1)
            moved_on = self.history_start + timedelta(days=15 + rng.randrange(span))
        surname = self.surname(rng)
        if rng.random() < self.volumes.double_barrelled_share:
            surname = f"{surname}-{self.surname(rng)}"
        kind = self._household_kind(rng)
        people: list[Person] = []

        def add(role: str, sex: str, birth: date, family: str, given: str | None = None) -> Person:
            """Add a member to the household."""
            index = first_index + len(people)
            name = given or self.given_name(rng, sex)
            nhs = None if rng.random() < self.volumes.no_nhs_number_person else self.nhs_numbers.issue()
            person = Person(index=index, person_id=f"P{index:07d}", family_id=family_id, role=role, given=name,
                            middle=self._middle(rng, sex, name), family=family, sex=sex, birth_date=birth,
                            address=address, nhs_number=nhs)
            if previous is not None and moved_on is not None and birth < moved_on:
                person.previous_address, person.moved_on = previous, moved_on
            people.append(person)
            return person

        if kind == "sharers":
            for _ in range(rng.choice((2, 2, 3))):
                add("sharer", rng.choice("FM"), self._birth_date(rng, rng.randrange(20, 36)), self.surname(rng))
            return people
        if kind in ("single", "couple"):
            age = self._adult_age(rng)
            first = add("householder", rng.choice("FM"), self._birth_date(rng, age), surname)
            if kind == "couple":
                self._partner(rng, first, age, add)
            return people
        eldest = self._child_age(rng) if rng.random() < 0.9 else rng.randrange(18, 23)
        mother_age = eldest + rng.randrange(20, 41)
        parent_sex = "F" if kind == "family" or rng.random() < 0.88 else "M"
        parent = add("householder", parent_sex, self._birth_date(rng, mother_age), surname)
        if kind == "family":
            self._partner(rng, parent, mother_age, add, opposite=True)
        ages = [eldest]
        for _ in range(self._children(rng) - 1):
            if ages[-1] - 1 >= 0:
                ages.append(max(ages[-1] - rng.randrange(1, 5), 0))
        for age in ages:
            birth = self._birth_date(rng, age)
            sex = rng.choice("FM")
            child = add("child", sex, birth, surname)
            if rng.random() < self.volumes.twin_share / 2:
                twin_sex = rng.choice("FM")
                given = self.given_name(rng, twin_sex)
                while given == child.given:
                    given = self.given_name(rng, twin_sex)
                twin = add("child", twin_sex, birth, surname, given)
                twin.twin_of, child.twin_of = child.person_id, twin.person_id
        return people

    def _partner(self, rng: random.Random, first: Person, age: int, add, opposite: bool = False) -> None:  # type: ignore[no-untyped-def]
        partner_age = max(18, min(age + round(rng.gauss(-1.5 if first.sex == "M" else 1.5, 3)), 100))
        sex = ("M" if first.sex == "F" else "F") if opposite or rng.random() < 0.95 else first.sex
        married = rng.random() < 0.65
        if not (married and rng.random() < self.volumes.married_name_share):
            add("partner", sex, self._birth_date(rng, partner_age), first.family if married else self.surname(rng))
            return
        partner = add("partner", sex, self._birth_date(rng, partner_age), first.family)
        # whoever took the other's name (the wife, in most marriages) carries a previous surname
        taker = first if first.sex == "F" and partner.sex == "M" else partner
        earliest = max(first.birth_date, partner.birth_date) + timedelta(days=365 * 20)
        span = (self.as_of - earliest).days
        birth_name = self.surname(rng)
        if span > 0 and birth_name != taker.family:
            taker.previous_family = birth_name
            taker.married_on = earliest + timedelta(days=rng.randrange(span))
