"""The identity review page of the workspace (``/ui/#/identity-review``) in headless Chromium (Debian's
/usr/bin/chromium; never a downloaded browser).

An MPI data steward signs in (at ``/ui/review``, the page's former address, which leads there, or at ``/ui/`` and
then its menu), sees the queue by risk, the two records side by side with their differences marked and the waterfall
of the model's weights, and settles items by keyboard alone: ``L`` links, ``N`` keeps apart, ``S`` skips, ``J``/``K``
move. Every decision is audited and sticks, a key pressed twice posts once, and the page passes axe-core (WCAG 2.2
A/AA). A person without the steward role is never shown it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from api_factories import PASSWORD, make_user
from sqlalchemy import select

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
A = "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number"  # RTK
B = "https://fhir.esht.nhs.uk/Id/hospital-number"  # RXC


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system` (Debian's chromium)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" and "status of 401" not in m.text
            else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems  # type: ignore[attr-defined]
    yield page
    context.close()


def axe_check(page: Any, view: str) -> None:
    """axe-core's WCAG 2.2 A/AA rules on the page as it is: no serious or critical violation."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG}, "resultTypes": ["violations"]})
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in results.response["violations"]
           if v["impact"] in ("serious", "critical")]
    assert bad == [], f"axe on the {view}: {bad}"


def seed_two_possible_matches(server: Any) -> None:
    """Two people, each with a second record whose NHS number differs (not verified): two review items, one
    likelier than the other (the second pair also differs on the given name)."""
    from mpi import Demographics, PatientIndex

    eleanor = {"family": "Whitfield", "given": "Eleanor", "birth_date": date(1978, 3, 14), "sex": "female",
               "postcode": "GU1 4AB", "address": "12 Mill Lane"}
    oliver = {"family": "Okafor", "given": "Oliver", "birth_date": date(1990, 7, 2), "sex": "male",
              "postcode": "BN1 1AA", "address": "9 Marine Parade"}
    with server.context.sessions() as session:
        index = PatientIndex(session, server.context.trusts)
        index.upsert(Demographics(A, "A1", nhs_number="9434765919", nhs_verification="01", **eleanor), event="t",
                     actor="feed")
        index.upsert(Demographics(B, "B1", nhs_number="9434765870", nhs_verification="02", **eleanor), event="t",
                     actor="feed")
        index.upsert(Demographics(A, "A2", nhs_number="4010232137", nhs_verification="01", **oliver), event="t",
                     actor="feed")
        index.upsert(Demographics(B, "B2", nhs_number="4857773456", nhs_verification="02",
                                  **{**oliver, "given": "Olly"}), event="t", actor="feed")
        session.commit()


def sign_in(page: Any, username: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_the_former_address_leads_to_the_workspace_page(live_server_sqlite: Any) -> None:
    """``/ui/review`` holds no page of its own any more: a redirect (no sign-in needed) to the workspace's."""
    import httpx

    answer = httpx.get(live_server_sqlite.base_url + "/ui/review", follow_redirects=False)
    assert answer.status_code == 307
    assert answer.headers["location"] == "/ui/#/identity-review"


def test_steward_settles_the_queue_by_keyboard(page: Any, live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    from mpi.tables import ManualDecision, ReviewItem
    from priorscan.tables import AuditEvent

    server = live_server_sqlite
    make_user(server.context, "steward.one", role="mpi-steward", trust=None)
    seed_two_possible_matches(server)
    with server.context.sessions() as session:
        items = session.scalars(select(ReviewItem).where(ReviewItem.status == "open")
                                .order_by(ReviewItem.score.desc())).all()
        assert len(items) == 2
        first, second = items[0].id, items[1].id

    page.goto(server.base_url + "/ui/review")  # the former address: the workspace's page after sign-in
    sign_in(page, "steward.one")
    expect(page).to_have_url(server.base_url + "/ui/#/identity-review")
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    expect(page.get_by_role("link", name="Identity review")).to_have_attribute("aria-current", "page")
    expect(page.locator("#queue-count")).to_have_text("2")
    expect(page.locator("#item-id")).to_have_text(str(first))  # the likeliest missed link first
    expect(page.locator("#compare-body tr.differs")).to_have_count(0)
    waterfall = page.locator("#waterfall-body")
    expect(waterfall.get_by_role("rowheader", name="prior (any two records)")).to_be_visible()
    expect(waterfall.get_by_role("rowheader", name="nhs_number")).to_be_visible()
    expect(waterfall.locator("tr.total")).to_contain_text("probability")
    axe_check(page, "review item")
    if os.environ.get("PRIORSCAN_SCREENSHOT_DIR"):  # for a person to look at
        page.screenshot(path=str(Path(os.environ["PRIORSCAN_SCREENSHOT_DIR"]) / "review.png"), full_page=True)

    page.keyboard.press("j")  # next, then back: moving decides nothing
    expect(page.locator("#item-id")).to_have_text(str(second))
    page.keyboard.press("k")
    expect(page.locator("#item-id")).to_have_text(str(first))
    page.keyboard.press("s")  # skip: nothing decided, the next item shows
    expect(page.locator("#status")).to_contain_text(f"Item {first} skipped")
    expect(page.locator("#item-id")).to_have_text(str(second))
    expect(page.locator("#queue-count")).to_have_text("2")
    differing = page.locator("#compare-body tr.differs")
    expect(differing).to_have_count(1)
    expect(differing.get_by_role("rowheader")).to_have_text("Given names")
    page.keyboard.press("n")  # not the same person
    expect(page.locator("#status")).to_contain_text(f"Item {second}: kept apart")
    expect(page.locator("#queue-count")).to_have_text("1")
    expect(page.locator("#item-id")).to_have_text(str(first))
    page.keyboard.press("l")  # link
    expect(page.locator("#status")).to_contain_text(f"Item {first}: linked")
    expect(page.locator("#queue-count")).to_have_text("0")
    expect(page.locator("#queue-empty")).to_be_visible()
    axe_check(page, "empty queue")
    assert page.problems == []  # type: ignore[attr-defined]

    with server.context.sessions() as session:
        settled = {i.id: i.resolution for i in session.scalars(select(ReviewItem))}
        assert settled[first] == "match" and settled[second] == "no-match"
        decisions = {d.decision for d in session.scalars(select(ManualDecision))}
        assert decisions == {"match", "no-match"}, "both decisions stick through relinks"
        audited = session.scalars(select(AuditEvent).where(AuditEvent.subtype == "mpi-review-decision")).all()
        assert len(audited) == 2


def test_identity_review_in_the_workspace_menu(page: Any, live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    """Opened from the workspace's menu; a decision key pressed twice before the first answer posts one decision."""
    from playwright.sync_api import expect

    from mpi.tables import ReviewItem
    from priorscan.tables import AuditEvent

    server = live_server_sqlite
    make_user(server.context, "steward.two", role="mpi-steward", trust=None)
    seed_two_possible_matches(server)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and "/api/v1/mpi/review/" in r.url
            else None)
    page.goto(server.base_url + "/ui/")
    sign_in(page, "steward.two")
    page.get_by_role("link", name="Identity review").click()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    expect(page.locator("#queue-count")).to_have_text("2")
    expect(page.locator("#waterfall-body tr.total")).to_contain_text("probability")
    axe_check(page, "identity review in the workspace")
    # two presses in one task: the second comes while the first decision is still being posted
    page.evaluate("""() => { for (let i = 0; i < 2; i++) {
        document.dispatchEvent(new KeyboardEvent("keydown", { key: "n", bubbles: true })); } }""")
    expect(page.locator("#queue-count")).to_have_text("1")
    assert len(posts) == 1
    page.keyboard.press("l")
    expect(page.locator("#queue-count")).to_have_text("0")
    expect(page.locator("#queue-empty")).to_be_visible()
    assert len(posts) == 2 and len(set(posts)) == 2
    assert page.problems == []  # type: ignore[attr-defined]
    with server.context.sessions() as session:
        assert sorted(i.resolution for i in session.scalars(select(ReviewItem))) == ["match", "no-match"]
        audited = session.scalars(select(AuditEvent).where(AuditEvent.subtype == "mpi-review-decision")).all()
        assert len(audited) == 2


def test_the_page_is_not_shown_to_a_person_without_the_steward_role(page: Any, live_server_sqlite  # type: ignore
                                                                    ) -> None:
    """A radiographer sent to the page's address lands on their own first page; the menu has no identity review."""
    from playwright.sync_api import expect

    make_user(live_server_sqlite.context)  # a radiographer
    page.goto(live_server_sqlite.base_url + "/ui/review")
    sign_in(page, "rad.one")
    expect(page).to_have_url(live_server_sqlite.base_url + "/ui/#/worklist")
    expect(page.get_by_role("link", name="Worklist")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("link", name="Identity review")).to_have_count(0)
    expect(page.get_by_role("heading", name="Review queue")).to_have_count(0)
    expect(page.locator("#queue")).to_have_count(0)
    axe_check(page, "the radiographer's page")
