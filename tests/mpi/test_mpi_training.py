"""Training: u from random pairs, m by EM per rule, the prior, household u, term frequencies."""

from __future__ import annotations

import numpy as np
import pytest
from mpi_factories import same_family_estimates

from bench.mpi_population import make_population
from mpi.blocking import key_table, pairs_from_keys
from mpi.frames import frame_from_table, table_from_stored
from mpi.model import Model
from mpi.normalise import to_match_record
from mpi.training import expectation_maximisation, in_training_sample, pairs_agreeing, sample_hash, train


@pytest.fixture(scope="module")
def trained() -> tuple[Model, int]:
    population = make_population(1500, seed=21)
    records = [to_match_record(i, d.__dict__) for i, d in enumerate(population.records)]
    table = table_from_stored(list(range(len(records))), [r.as_stored() for r in records])
    frame = frame_from_table(table)
    true_pairs = sum(n * (n - 1) // 2 for n in np.unique([t[0] for t in population.truth], return_counts=True)[1])
    return train(frame, pairs_from_keys(key_table(table))), true_pairs


def level(model: Model, comparison: str, label: str) -> tuple[float, float]:
    i = model.index_of(comparison)
    assert i is not None
    j = model.comparisons[i].labels.index(label)
    return model.m[i][j], model.u[i][j]


def test_learnt_probabilities_make_sense(trained: tuple[Model, int]) -> None:
    model, _ = trained
    m, u = level(model, "given", "exact")
    assert m > 0.8 and u < 0.05
    m, u = level(model, "birth_date", "exact")
    assert m > 0.85 and u < 0.001
    m, u = level(model, "nhs_number", "exact")
    assert m > 0.9 and u < 0.001
    m, _ = level(model, "birth_date", "else")
    assert m < 0.05, "EM learnt the person, not the household"
    assert model.training["kind"] == "em" and len(model.training["runs"]) == 3


def test_prior_is_close_to_the_truth(trained: tuple[Model, int]) -> None:
    model, true_pairs = trained
    n = model.training["records"]
    truth = true_pairs / (n * (n - 1) / 2)
    assert truth / 2 < model.prior < truth * 2


def test_household_u_and_term_frequencies(trained: tuple[Model, int]) -> None:
    model, _ = trained
    residence = model.index_of("residence")
    assert residence is not None and "residence" in model.u_same_family
    # relatives share an address far more often than strangers
    assert model.u_same_family["residence"][0] > 10 * model.u[residence][0]
    assert model.tf_total > 0 and model.tf["family"]


def test_em_recovers_a_planted_mixture() -> None:
    rng = np.random.default_rng(0)
    model = Model.default()
    n_match, n_non = 2000, 18000
    columns = len(model.comparisons)
    levels = np.full((n_match + n_non, columns), -1, dtype=np.int8)
    family = model.index_of("family")
    birth = model.index_of("birth_date")
    assert family is not None and birth is not None
    levels[:n_match, family] = rng.choice([0, 6], n_match, p=[0.9, 0.1])
    levels[n_match:, family] = rng.choice([0, 6], n_non, p=[0.01, 0.99])
    levels[:n_match, birth] = rng.choice([0, 4], n_match, p=[0.95, 0.05])
    levels[n_match:, birth] = rng.choice([0, 4], n_non, p=[0.001, 0.999])
    u = [list(x) for x in model.u]
    u[family] = [0.01, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 0.98995]
    u[birth] = [0.001, 1e-6, 1e-6, 1e-6, 0.998997]
    result = expectation_maximisation(model, levels, u)
    assert result.converged
    assert result.match_share == pytest.approx(0.1, abs=0.01)
    assert result.m[family][0] == pytest.approx(0.9, abs=0.03)


def _twins_among_one_birth_date(rng: np.random.Generator) -> tuple[Model, np.ndarray, list[list[float]]]:
    """Pairs of one birth date (the birth-date rule's): one person's records, mostly at one home, whose given names
    agree but for 2 %; twins at their home, whose family name agrees, whose given names differ and whose sex
    differs half the time; strangers elsewhere. u from random pairs; the households' u as training learns it."""
    model = Model.default()
    family, given, sex, residence = (model.index_of(n) for n in ("family", "given", "sex", "residence"))
    assert family is not None and given is not None and sex is not None and residence is not None
    n_one, n_twins, n_strangers = 3000, 1500, 20000
    levels = np.full((n_one + n_twins + n_strangers, len(model.comparisons)), -1, dtype=np.int8)
    one, twins, strangers = slice(0, n_one), slice(n_one, n_one + n_twins), slice(n_one + n_twins, None)
    levels[one, given] = rng.choice([0, 7], n_one, p=[0.98, 0.02])
    levels[one, family] = rng.choice([0, 7], n_one, p=[0.97, 0.03])
    levels[one, residence] = rng.choice([0, 6], n_one, p=[0.8, 0.2])
    levels[twins, given] = rng.choice([0, 7], n_twins, p=[0.002, 0.998])
    levels[twins, family] = 0
    levels[twins, residence] = 0
    levels[one, sex] = rng.choice([0, 1], n_one, p=[0.99, 0.01])
    levels[twins, sex] = rng.choice([0, 1], n_twins, p=[0.5, 0.5])
    levels[strangers, sex] = rng.choice([0, 1], n_strangers, p=[0.5, 0.5])
    levels[strangers, given] = rng.choice([0, 7], n_strangers, p=[0.002, 0.998])
    levels[strangers, family] = rng.choice([0, 7], n_strangers, p=[0.001, 0.999])
    levels[strangers, residence] = rng.choice([0, 6], n_strangers, p=[0.0005, 0.9995])
    u = [list(x) for x in model.u]
    u[given] = [0.002, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 0.99794]
    u[family] = [0.001, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 0.99894]
    u[residence] = [0.0005, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 0.99945]
    u[sex] = [0.5, 0.5]
    households = model.evolve(u_household={**model.u_household,
                                           "given": [0.002, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 0.99794],
                                           "family": [0.9, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 0.09994],
                                           "sex": [0.5, 0.5]},
                              household_prior=0.4)
    return households, levels, u


def test_em_weighs_pairs_at_one_home_against_relatives_not_strangers() -> None:
    """Issue 17: twins (one birth date, one family name, one home) fall among the birth-date rule's pairs. Weighed
    against strangers, their shared home and family name make them one person in EM's eyes, and EM learns that one
    person's given names differ 1 time in 4. Weighed against the household's relatives (the way the scoring weighs
    them), they are relatives: m of differing given names comes out near the planted 2 %."""
    households, levels, u = _twins_among_one_birth_date(np.random.default_rng(3))
    given = households.index_of("given")
    assert given is not None
    against_strangers = expectation_maximisation(households, levels, u)
    assert against_strangers.m[given][7] > 0.2  # the twins taught as one person
    against_relatives = expectation_maximisation(households, levels, u, household=households)
    assert 0.001 < against_relatives.m[given][7] < 0.025
    # the pairs EM counts as one person: the 3 000 records of one person, not the 1 500 twins with them
    assert against_relatives.match_share * len(levels) == pytest.approx(3000, rel=0.03)


def test_pairs_agreeing_samples_uniformly_within_blocks() -> None:
    values = np.array(["a", "a", "a", "b", "b", "", "c"], dtype=object)
    left, right, total = pairs_agreeing(values, max_pairs=100, rng=np.random.default_rng(1))
    assert total == 4  # three pairs of "a", one of "b"; "" and lone "c" make none
    assert all(values[x] == values[y] and x != y for x, y in zip(left, right, strict=True))


def test_relatives_are_learnt_from_the_households(trained: tuple[Model, int]) -> None:
    """Among the people of one home, sharing a birth date (twins) and a family name is far commoner than among
    strangers, and sharing a first name rarer than the name's frequency suggests: EM with m fixed learns it."""
    model, _ = trained
    household = model.training["household"]
    assert household["pairs"] > 500 and household["relatives"] > 100
    birth, family = model.index_of("birth_date"), model.index_of("family")
    assert birth is not None and family is not None
    assert model.u_household["birth_date"][0] > 20 * model.u[birth][0], "twins: relatives share a birth date"
    assert model.u_household["family"][0] > 50 * model.u[family][0], "a family shares its name"
    assert 0.05 < model.household_prior < 0.95, "pairs at one home: some one person, some relatives"
    assert model.kin_per_record > 0.3


def _frame_of(demographics: list) -> object:  # type: ignore[type-arg]
    records = [to_match_record(i, d.__dict__) for i, d in enumerate(demographics)]
    return frame_from_table(table_from_stored(list(range(len(records))), [r.as_stored() for r in records]))


@pytest.fixture(scope="module")
def without_households() -> Model:
    """A model trained on FEBRL dataset 3: one original and its duplicates, nobody else at the address."""
    from bench.mpi_data import febrl, febrl_demographics

    return train(_frame_of(list(febrl_demographics(febrl("dataset3")))))  # type: ignore[arg-type]


def test_a_population_without_households_learns_that_pairs_at_one_home_are_one_person(
        without_households: Model) -> None:
    """FEBRL-like data (one original and its duplicates, nobody else at the address): the household prior comes
    out near one and kin per record near zero, so the twin rate of the prior knowledge weighs nothing there.

    ~780 pairs at one home hold no relatives: the share of one person is that evidence by Laplace's rule (1 - 1/782),
    not pulled to 0.987 by twenty pseudo-observations of one half (ten imagined relatives), which kept a copy whose
    given name and birth date were both replaced, at its home, below the match threshold."""
    model = without_households
    household = model.training["household"]
    assert household["pairs"] > 500 and household["relatives"] < 1, household
    assert model.household_prior > 1 - 2 / household["pairs"], household
    assert model.kin_per_record < 0.05, household



def test_levels_never_seen_among_strangers_of_one_family_name_share_one_floor(without_households: Model) -> None:
    """FEBRL has no households: the few hundred stranger pairs of one family name share no home, no street, no
    postcode. Not seeing five levels in n pairs bounds their chance *together* by about 1/n; a floor of 1/n on each
    gave them 5/n, so a copy at its own street with its house number mistyped weighed 5 bits less where the family
    names agreed than where they did not (FEBRL 3-4's largest group of missed pairs, H-ID-43). No level falls
    below the ordinary u: people of one family name share a street at least as often as any two people."""
    model = without_households
    residence = model.index_of("residence")
    assert residence is not None
    same_family, ordinary = model.u_same_family["residence"], model.u[residence]
    labels = model.comparisons[residence].labels
    unseen = [labels.index(x) for x in ("postcode-and-address", "postcode-and-part", "postcode", "address",
                                        "both-nearly")]
    assert sum(same_family[i] for i in unseen) < 0.006  # about one observation's share (~1/330), not five of them
    # every level but *else*, which gives up what the others take
    assert all(s >= o * 0.999 for s, o in zip(same_family[:-1], ordinary[:-1], strict=True))
    part = labels.index("postcode-and-part")
    assert same_family[part] < 3 * ordinary[part]


@pytest.mark.parametrize(("counts", "why"), [
    pytest.param([0, 0, 0, 7, 320], "three levels unseen: one share of 1/327 between them, split as the prior"),
    pytest.param([0, 5, 10, 7, 305], "one level unseen: its own floor, as before"),
    pytest.param([30, 20, 10, 40, 227], "all seen: the ordinary smoothed frequencies"),
])
def test_unseen_levels_share_one_observation_s_share(counts: list[int], why: str) -> None:
    from mpi.training import _smoothed, _smoothed_unseen_together

    prior = [2e-4, 1e-4, 1e-3, 1e-2, 0.9887]
    got = np.asarray(_smoothed_unseen_together(np.asarray(counts, dtype=np.float64), prior, 1e-9))
    old = np.asarray(_smoothed(np.asarray(counts, dtype=np.float64), prior, 1e-9))
    n = sum(counts)
    unseen = np.asarray(counts) == 0
    assert got.sum() == pytest.approx(1.0), why
    assert np.all(got[:-1] >= np.asarray(prior)[:-1] * 0.99), why
    if unseen.sum() > 1:
        assert got[unseen].sum() == pytest.approx(1 / n, rel=0.05), why
        np.testing.assert_allclose(got[unseen] / got[unseen].sum(), np.asarray(prior)[unseen]
                                   / np.asarray(prior)[unseen].sum(), rtol=1e-6)
    else:
        np.testing.assert_allclose(got, old, rtol=0.05, err_msg=why)


def test_sample_hash_is_splitmix64() -> None:
    # SplitMix64's published first outputs from state 0 (seed 0: the state after one step is γ): the hash is the
    # same function on every machine and in every Spark task
    assert sample_hash(np.asarray([0, 1], dtype=np.int64)).tolist() == [0xE220A8397B1DCDAF, 0x910A2DEC89025CC1]


@pytest.mark.parametrize(("records", "sample"), [
    (300, 100),  # the small store of the Spark agreement test's kind
    (1_000_000, 200_000),  # 1 M records with the default sample
])
def test_training_sample_is_about_its_size_and_independent_of_order_and_partition(records: int, sample: int) -> None:
    ids = np.arange(1, records + 1, dtype=np.int64)
    chosen = in_training_sample(ids, records=records, sample=sample)
    spread = 4 * np.sqrt(sample)  # four standard deviations of a binomial count
    assert abs(int(chosen.sum()) - sample) < spread
    # another order, and the ids split across partitions as Spark tasks read them: the same records
    order = np.random.default_rng(3).permutation(records)
    assert np.array_equal(in_training_sample(ids[order], records=records, sample=sample), chosen[order])
    parts = np.concatenate([in_training_sample(part, records=records, sample=sample)
                            for part in np.array_split(ids, 7)])
    assert np.array_equal(parts, chosen)


def test_training_sample_keeps_neighbouring_records_together_as_often_as_chance() -> None:
    # ids are given out in load order, so one person's records are often neighbours: a rule that took every fifth
    # id, or a multiplicative hash, would never (or always) take two neighbours, and EM would see no pairs of them
    ids = np.arange(1, 1_000_001, dtype=np.int64)
    chosen = in_training_sample(ids, records=len(ids), sample=200_000)
    share = chosen.mean()
    both = (chosen[:-1] & chosen[1:]).mean()
    assert abs(both - share**2) < 0.005


def test_every_record_trains_a_store_no_larger_than_the_sample() -> None:
    ids = np.arange(10, 110, dtype=np.int64)
    assert in_training_sample(ids, records=100, sample=100).all()
    assert 20 < in_training_sample(ids, records=200, sample=100).sum() < 80  # beyond it, about sample / records


# --- stand-in given names and the middle name's m (hazard H-ID-32) ---------------------------------------------

def _people(count: int, *, middle: bool = False) -> list:  # type: ignore[type-arg]
    """``count`` people, two records each: the same given name, family name and birth date."""
    from datetime import date

    from mpi.records import Demographics

    names = ["Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Noah", "Mia", "Jack", "Ivy", "Leo", "Rosie"]
    out = []
    for k in range(count):
        given = names[k % len(names)] + (f" {'ABCDEFGHJK'[k % 10]}" if middle else "")
        for copy in range(2):
            family = f"{'BCDFGHKLMN'[k // 100 % 10]}{'AEIOU'[k // 20 % 5]}{'BCDFGHKLMNPRSTVWXYZJ'[k % 20]}ington"
            out.append(Demographics(namespace="urn:t", local_id=f"{k}-{copy}", family=family, given=given,
                                    birth_date=date(1950 + k % 50, 1 + k % 12, 1 + k % 28), sex="female",
                                    postcode="GU1 4AB", address=f"{k} Mill Lane"))
    return out


def test_a_name_whose_holders_agree_with_no_record_of_their_other_name_and_birth_date_is_learnt_a_stand_in() -> None:
    """``DAUGHTER`` keyed for four people who each have a record with their own name: learnt a stand-in, and
    ``OCCUPANT`` as a family name for three. A twin seen once (``LILY``, her sister's two records beside her) is
    not: one holder, and the name's other holders agree with their own other records."""
    from dataclasses import replace

    from mpi.training import stand_in_names, training_columns

    people = _people(40)
    for k in (1, 5, 9, 13):  # one record of each of four people keyed as DAUGHTER
        people[2 * k + 1] = replace(people[2 * k + 1], given="Daughter")
    twin = replace(people[2 * 20], local_id="twin", given="Lily")  # person 20's twin, one record
    lilies = [replace(people[2 * 30 + copy], given="Lily") for copy in range(2)]  # another Lily, two records
    people[2 * 30:2 * 30 + 2] = lilies
    for k in (2, 6, 10):  # and one record of each of three others under the family name OCCUPANT
        people[2 * k] = replace(people[2 * k], family="Occupant")
    people[2 * 25] = replace(people[2 * 25], family="Raington")  # a slip in a family name agrees, distantly
    frame = _frame_of([*people, twin])
    stand_ins, run = stand_in_names(Model.default(), frame, training_columns(frame))  # type: ignore[arg-type]
    assert stand_ins == ["DAUGHTER"], run
    family, run = stand_in_names(Model.default(), frame, training_columns(frame),  # type: ignore[arg-type]
                                 column="family")
    assert family == ["OCCUPANT"], run



def test_strangers_of_one_family_name_and_birth_date_do_not_make_a_real_name_a_stand_in() -> None:
    """In a large store many strangers share a family name and a full birth date. Four people named ``Alessia``,
    each seen once, each share them with a stranger living elsewhere (another home, another NHS number): their
    name agrees with no record of their family name and birth date, as a stand-in's would, but nothing beyond the
    names says those records are one person or one household, so ``ALESSIA`` is not learnt a stand-in (H-ID-32).
    ``DAUGHTER`` beside their own person's record at their own home still is."""
    from dataclasses import replace

    from mpi.training import stand_in_names, training_columns

    people = _people(40)
    for k in (1, 5, 9, 13):
        people[2 * k + 1] = replace(people[2 * k + 1], given="Daughter")
    for k in (3, 7, 11, 15):  # each of four people's second record is a stranger's of the same family name and birth
        stranger = people[2 * k + 1]
        people[2 * k + 1] = replace(stranger, local_id=f"alessia-{k}", given="Alessia",
                                    postcode=f"BN{k} 9ZZ", address=f"{k + 200} Station Road", nhs_number=None)
        people[2 * k] = replace(people[2 * k], nhs_number=None)
    frame = _frame_of(people)
    stand_ins, run = stand_in_names(Model.default(), frame, training_columns(frame))  # type: ignore[arg-type]
    assert stand_ins == ["DAUGHTER"], run



def test_a_typing_slip_held_three_times_is_not_a_stand_in() -> None:
    """A large store holds one slip of a common name several times (``GEPRGE`` for three people named George,
    a slip that close spelling does not reach; ``MIT`` for three named Mia). Each holder's other record says
    ``GEORGE`` (``MIA``), one keystroke away: the slip agrees with its holder's own record, so neither it nor the
    real name beside it is learnt a stand-in, and both stay evidence that keeps a twin apart (H-ID-32).
    ``DAUGHTER`` still is one."""
    from dataclasses import replace

    from mpi.training import stand_in_names, training_columns

    people = _people(40)
    for k in (1, 5, 9, 13):
        people[2 * k + 1] = replace(people[2 * k + 1], given="Daughter")
    for k in (14, 26, 38):  # George, each one record keyed with a slip
        assert people[2 * k].given == "George"
        people[2 * k + 1] = replace(people[2 * k + 1], given="Geprge")
    for k in (7, 19, 31):  # and Mia, a short name with its last letter mistyped
        assert people[2 * k].given == "Mia"
        people[2 * k + 1] = replace(people[2 * k + 1], given="Mit")
    frame = _frame_of(people)
    stand_ins, run = stand_in_names(Model.default(), frame, training_columns(frame))  # type: ignore[arg-type]
    assert stand_ins == ["DAUGHTER"], run


def test_a_stand_in_given_name_is_compared_as_none_and_makes_its_record_weak() -> None:
    """A record whose given name is a stand-in has no given name to compare: its given-name level is missing (no
    evidence against the person's other records) and it is weak, so rule 8 and the integrity check treat it as a
    record without a given name (it vouches for nobody and could be either twin)."""
    from mpi.frames import frame_from_records
    from mpi.scoring import comparison_levels, weak_records
    from tests.mpi.mpi_factories import match_record

    frame = frame_from_records([match_record(1, given="Daughter"), match_record(2), match_record(3, given="Mary")])
    learnt = Model.default().evolve(stand_in_given=["DAUGHTER"])
    given = learnt.index_of("given")
    assert given is not None
    left, right = frame.take(np.array([0, 1])), frame.take(np.array([1, 2]))
    assert comparison_levels(learnt, left, right)[:, given].tolist() == [-1, learnt.comparisons[given].labels.index(
        "else")]
    assert comparison_levels(Model.default(), left, right)[0, given] >= 0, "without the stand-in learnt: compared"
    assert weak_records(frame, learnt).tolist() == [True, False, False]
    assert weak_records(frame).tolist() == [False, False, False]


def test_the_middle_name_m_is_read_from_pairs_of_one_person() -> None:
    """Pairs agreeing on given name, family name and full birth date are one person: their middle names agree, so
    m of ``else`` comes out small (EM's runs, with twins in them, put it near a third on pseudopeople)."""
    from mpi.training import MIDDLE_M_PAIRS, estimate_m_middle, training_columns

    frame = _frame_of(_people(MIDDLE_M_PAIRS + 50, middle=True))
    model = Model.default()
    prior = [list(row) for row in model.m]
    found, pairs = estimate_m_middle(model, frame, training_columns(frame), prior=prior,  # type: ignore[arg-type]
                                     rng=np.random.default_rng(0))
    assert found is not None and pairs >= MIDDLE_M_PAIRS
    comparison, m = found
    assert comparison.name == "middle"
    assert m[comparison.labels.index("else")] < 0.02, m  # one person's initials agree
    assert m[comparison.labels.index("initial-or-first")] > 0.9, m
    assert abs(sum(m) - 1) < 1e-9
    few, _ = estimate_m_middle(model, _frame_of(_people(20, middle=True)), training_columns(
        _frame_of(_people(20, middle=True))), prior=prior, rng=np.random.default_rng(0))  # type: ignore[arg-type]
    assert few is None, "too few pairs of one person: the runs' m is kept"


def test_the_same_family_u_is_learnt_once_with_the_last_pass_s_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training runs EM twice (strangers, then the households' relatives) and keeps the second pass's same-family u:
    the first pass's (comparison levels of 40 000 pairs, ~0.3 CPU-s at 30 000 records) was computed and thrown
    away. It is now computed once, from the last pass's model and the pairs every pass draws alike."""
    population = make_population(1500, seed=21)
    records = [to_match_record(i, d.__dict__) for i, d in enumerate(population.records)]
    frame = frame_from_table(table_from_stored(list(range(len(records))), [r.as_stored() for r in records]))
    calls = same_family_estimates(monkeypatch)
    model = train(frame)
    assert model.training["household"]["pairs"] > 0, "the households' pass ran: two passes"
    assert len(calls) == 1
    used, found = calls[0]
    assert used.m == model.m and used.u == model.u, "the last pass's model"
    assert found == model.u_same_family and found
