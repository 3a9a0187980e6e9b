"""Where people live and which trusts serve them.

The region's postcode districts (GU, KT, TW, RH, BN and TN) with their post towns, a relative population weight and
the trusts that serve them come from ``data/districts.csv``. Addresses are British in shape: a house number (or a
house name) on a street, the post town, the county and a postcode whose outward code is a real district.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import random
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from faker.providers.person.en_GB import Provider as PersonProvider

_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the letters Royal Mail uses in inward codes

# How likely a second trust is, given the first (judgement: neighbours refer to each other).
NEIGHBOURS: dict[str, dict[str, float]] = {
    "RTK": {"RA2": 0.8, "RYR": 0.1, "RXC": 0.05, "RPC": 0.05},
    "RA2": {"RTK": 0.6, "RYR": 0.3, "RXC": 0.05, "RPC": 0.05},
    "RYR": {"RXC": 0.45, "RA2": 0.3, "RTK": 0.1, "RPC": 0.15},
    "RXC": {"RYR": 0.8, "RA2": 0.05, "RTK": 0.05, "RPC": 0.1},
    "RPC": {"RYR": 0.6, "RXC": 0.3, "RA2": 0.1},
}


@dataclass(frozen=True, slots=True)
class District:
    """A postcode district (outward code) of the region."""

    outward: str
    town: str
    county: str
    weight: float
    trusts: tuple[tuple[str, float], ...]

    @property
    def area(self) -> str:
        """The postcode area (``GU`` for ``GU21``)."""
        return self.outward.rstrip("0123456789")


@dataclass(frozen=True, slots=True)
class Address:
    """A postal address as the Royal Mail would write it."""

    line1: str
    line2: str
    town: str
    county: str
    postcode: str

    @property
    def outward(self) -> str:
        """The outward code (``GU21`` for ``GU21 4AB``)."""
        return self.postcode.split(" ")[0]


@cache
def districts() -> tuple[District, ...]:
    """Every district of the region, from the packaged table."""
    text = resources.files("regionsynth.data").joinpath("districts.csv").read_text(encoding="utf-8")
    out = []
    for row in csv.DictReader(text.splitlines()):
        trusts = tuple((part.split(":")[0], float(part.split(":")[1])) for part in row["trusts"].split())
        out.append(District(row["outward"], row["town"], row["county"], float(row["weight"]), trusts))
    return tuple(out)


@cache
def population_table() -> dict:
    """The population shape (age pyramid, households, streets) from ``data/population.toml``."""
    text = resources.files("regionsynth.data").joinpath("population.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


class WeightedChoice:
    """Fast repeated weighted choice from a fixed list (cumulative weights and bisection)."""

    def __init__(self, items: list, weights: list[float]) -> None:
        self.items = items
        self._cum = list(itertools.accumulate(weights))
        self._total = self._cum[-1]

    def __call__(self, rng: random.Random):  # type: ignore[no-untyped-def]
        return self.items[bisect.bisect_right(self._cum, rng.random() * self._total)]


class Geography:
    """Draws districts, addresses, home trusts and referral trusts.

    Parameters
    ----------
    trust_codes
        ODS codes of the configured trusts; a district's trusts that are not configured are ignored, and a district
        served by none of them falls back to the first trust.
    specialist
        ODS code of the specialist centre that receives referrals (RPC, Queen Victoria Hospital).
    """

    def __init__(self, trust_codes: list[str], specialist: str = "RPC") -> None:
        self.trust_codes = trust_codes
        self.specialist = specialist if specialist in trust_codes else None
        table = districts()
        self._district = WeightedChoice(list(table), [d.weight for d in table])
        self._by_area: dict[str, list[District]] = {}
        for d in table:
            self._by_area.setdefault(d.area, []).append(d)
        streets = population_table()["streets"]
        self._stems: list[str] = list(streets["stems"]) + [s for s in PersonProvider.last_names if " " not in s][:150]
        self._suffixes: list[str] = list(streets["suffixes"])
        self._houses: list[str] = list(streets["houses"])

    def district(self, rng: random.Random) -> District:
        """A district drawn by population weight."""
        return self._district(rng)

    def nearby_district(self, rng: random.Random, home: District) -> District:
        """A district in the same postcode area most of the time (people move locally)."""
        if rng.random() < 0.7:
            return rng.choice(self._by_area[home.area])
        return self.district(rng)

    def address(self, rng: random.Random, district: District | None = None) -> Address:
        """A new address in ``district`` (or anywhere in the region)."""
        d = district or self.district(rng)
        street = f"{rng.choice(self._stems)} {rng.choice(self._suffixes)}"
        roll = rng.random()
        if roll < 0.06:
            line1, line2 = rng.choice(self._houses), street
        elif roll < 0.16:
            line1, line2 = f"Flat {rng.randint(1, 24)}", f"{rng.randint(1, 120)} {street}"
        else:
            line1, line2 = f"{rng.randint(1, 180)} {street}", ""
        inward = f"{rng.randint(0, 9)}{rng.choice(_INWARD_LETTERS)}{rng.choice(_INWARD_LETTERS)}"
        return Address(line1, line2, d.town, d.county, f"{d.outward} {inward}")

    def district_of(self, address: Address) -> District:
        """The district of ``address`` (its outward code)."""
        for d in districts():
            if d.outward == address.outward:
                return d
        raise KeyError("postcode district not in the region")

    def home_trust(self, rng: random.Random, district: District) -> str:
        """The trust whose catchment the district lies in (chosen by the district's weights)."""
        served = [(ods, w) for ods, w in district.trusts if ods in self.trust_codes]
        if not served:
            return self.trust_codes[0]
        return WeightedChoice([ods for ods, _ in served], [w for _, w in served])(rng)

    def other_trust(self, rng: random.Random, have: list[str], specialist_share: float) -> str | None:
        """A further trust for someone registered at ``have``: a referral centre or a neighbour."""
        if self.specialist and self.specialist not in have and rng.random() < specialist_share:
            return self.specialist
        weights = NEIGHBOURS.get(have[0], {})
        options = [ods for ods in self.trust_codes if ods not in have and ods != self.specialist]
        if not options:
            return None
        return WeightedChoice(options, [weights.get(ods, 0.05) for ods in options])(rng)
