"""The placement rules (:func:`mpi.placement.place`) on scored clusters, without a store."""

from __future__ import annotations

from mpi_factories import NHS_OTHER, match_record

from mpi import MATCH, NO_MATCH, POSSIBLE, Model
from mpi.index_store import score_clusters
from mpi.placement import link_changed, nhs_numbers_disagree, place

MODEL = Model.default()
PROBE = match_record(0)
SAME = match_record(1, postcode="GU2 7XH", address="3 Other Road, Guildford")  # one person: same NHS number, moved
STRANGER = match_record(2, given="Rupert", family="Okafor", birth_date="1990-10-02", nhs_number=NHS_OTHER,
                        sex="male", postcode="BN1 1AA", address="2 Sea Road", phone=None)
TWIN = match_record(3, given="Edith", nhs_number=NHS_OTHER)  # same family, birth date, address: another person


def test_a_match_joins_the_patient() -> None:
    placement = place(score_clusters(MODEL, PROBE, {"RPA": [SAME], "RPB": [STRANGER]}), {})
    assert (placement.state, placement.join, placement.review) == (MATCH, "RPA", None)
    assert placement.probability is not None and placement.probability > 0.99
    assert placement.target("RPOLD", alone=True, new_id="RPNEW") == "RPA"


def test_nobody_leaves_the_record_alone() -> None:
    placement = place(score_clusters(MODEL, PROBE, {"RPB": [STRANGER]}), {})
    assert (placement.state, placement.join, placement.review, placement.score) == (MATCH, None, None, None)
    assert placement.target("RPOLD", alone=True, new_id="RPNEW") == "RPOLD"
    assert placement.target("RPOLD", alone=False, new_id="RPNEW") == "RPNEW"
    assert placement.target(None, alone=False, new_id="RPNEW") == "RPNEW"


def test_a_conflicting_member_keeps_the_record_out_and_puts_it_to_review() -> None:
    placement = place(score_clusters(MODEL, PROBE, {"RPA": [SAME, TWIN]}), {})
    assert placement.join is None and placement.state == POSSIBLE
    assert placement.review is not None and placement.review[0] == SAME.record_id


def test_manual_decisions_stick() -> None:
    scores = score_clusters(MODEL, PROBE, {"RPA": [SAME], "RPB": [STRANGER]})
    apart = place(scores, {SAME.record_id or 0: NO_MATCH})
    assert (apart.state, apart.join, apart.review) == (NO_MATCH, None, None)
    together = place(scores, {STRANGER.record_id or 0: MATCH})
    assert (together.state, together.join) == (MATCH, "RPB")


def test_a_link_event_is_written_only_for_a_change() -> None:
    assert not link_changed("RPA", "RPA", state=MATCH, old_state=MATCH, manual_changed=False)
    assert link_changed("RPA", "RPB", state=MATCH, old_state=MATCH, manual_changed=False)
    assert link_changed("RPA", "RPA", state=POSSIBLE, old_state=MATCH, manual_changed=False)
    assert link_changed("RPA", "RPA", state=MATCH, old_state=MATCH, manual_changed=True)


def test_two_valid_nhs_numbers_disagree() -> None:
    assert nhs_numbers_disagree({"1"}, {"2"}) and not nhs_numbers_disagree({"1"}, set())
