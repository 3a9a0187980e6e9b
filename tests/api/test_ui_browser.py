"""The radiographer page in headless Chromium (Debian's /usr/bin/chromium; never a downloaded browser).

Sign in, see the open alerts of one's trust with a one-click link to the prior images, override one with a coded
reason, see it leave the list. Alerts are put straight into the store; the page reads and acts on them through the
alerts API (``GET /api/v1/alerts``, ``POST /api/v1/alerts/{id}/override``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_factories import PASSWORD, make_alert, make_prior, make_user
from sqlalchemy import select

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
SCREENSHOT = Path("/tmp/ui.png")
VIEWER = "https://pacs.region.example.nhs.uk/viewer?trust=RA2&StudyInstanceUIDs=2.25.4242"


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


def _sign_in(page: Any, base_url: str, username: str = "rad.one", password: str = PASSWORD) -> None:
    page.goto(base_url + "/ui/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_is_refused_with_a_wrong_password(page: Any, live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    make_user(live_server_sqlite.context)
    _sign_in(page, live_server_sqlite.base_url, password="not the password")
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.get_by_label("Password").input_value() == ""
    assert page.problems == []  # type: ignore[attr-defined]


def test_radiographer_sees_and_overrides_an_alert(page: Any, live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    from api.routers.ui import override_reasons
    from dedupe.tables import Alert

    context = live_server_sqlite.context
    offered = override_reasons(context.settings.rules_file)  # the rule table's list, which the page offers
    reason = next(r for r in offered if "protocol" in r.display.lower())
    make_user(context)
    alert_id = make_alert(context, priors=[
        make_prior(viewerUrl=VIEWER, description="CT CHEST ABDOMEN PELVIS WITH CONTRAST", daysAgo=12,
                   effectiveDoseMsv=9.6, trust="RA2"),
        make_prior(description="CT CHEST LOW DOSE", daysAgo=61, severity="info", trust="RYR", effectiveDoseMsv=None,
                   studyDate=(date.today() - timedelta(days=61)).isoformat(),
                   studyInstanceUid="2.25.99", viewerUrl="https://pacs.region.example.nhs.uk/viewer?x=2.25.99")])
    other_trust = make_alert(context, requesting_trust="RXC", request={"modality": "XR", "bodySite": "chest"})

    _sign_in(page, live_server_sqlite.base_url)
    expect(page.get_by_role("heading", name=re.compile("Open alerts at Ashford"))).to_be_visible()
    card = page.locator(f'li.alert[data-alert-id="{alert_id}"]')
    expect(card).to_be_visible()
    expect(page.locator(f'li.alert[data-alert-id="{other_trust}"]')).to_have_count(0)  # another trust's
    expect(card).to_contain_text("CT chest")
    expect(card).to_contain_text("12 days before the request")
    expect(card).to_contain_text("Royal Surrey NHS Foundation Trust (RA2)")
    expect(card).to_contain_text("≈ 9.6 mSv (estimate)")
    expect(card).to_contain_text("not recorded")  # the second prior's dose
    view = card.get_by_role("link", name=re.compile("View images: CT CHEST ABDOMEN PELVIS"))
    expect(view).to_be_visible()
    assert view.get_attribute("href") == VIEWER
    assert view.get_attribute("target") == "_blank" and "noopener" in (view.get_attribute("rel") or "")
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    card.get_by_role("button", name=re.compile("Override alert")).click()
    card.get_by_role("button", name="Confirm override").click()
    expect(card.get_by_role("alert")).to_contain_text("Choose a reason")  # a reason is required
    assert card.get_by_label("Reason").locator("option").all_inner_texts()[1:] == [r.display for r in offered]
    card.get_by_label("Reason").select_option(label=reason.display)
    card.get_by_role("button", name="Confirm override").click()
    expect(card.get_by_role("alert")).to_contain_text("Add a comment")  # and a comment
    card.get_by_label("Comment").fill("Arterial phase needed; prior was portal venous only.")
    page.screenshot(path=str(SCREENSHOT.with_name("ui-override.png")), full_page=True)
    card.get_by_role("button", name="Confirm override").click()

    expect(card).to_have_count(0)
    expect(page.get_by_role("status")).to_contain_text("Alert overridden")
    expect(page.get_by_text("No open alerts for your trust.")).to_be_visible()
    with context.sessions() as session:
        alert = session.scalars(select(Alert).where(Alert.id == alert_id)).one()
    assert alert.status == "overridden"
    assert (alert.reason_system, alert.reason_code) == (reason.system, reason.code)
    assert alert.comment == "Arterial phase needed; prior was portal venous only."

    page.reload()  # the list comes from the server: still gone
    expect(page.get_by_text("No open alerts for your trust.")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.problems == []  # type: ignore[attr-defined]


def test_check_a_request_shows_the_verdict(page: Any, live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    make_user(live_server_sqlite.context)
    _sign_in(page, live_server_sqlite.base_url)
    form = page.get_by_role("complementary", name="Check a request")
    form.get_by_label("NHS number").fill("999 000 123")
    form.get_by_label("Body site").fill("chest")
    form.get_by_role("button", name="Check for recent imaging").click()
    expect(form.get_by_role("alert")).to_contain_text("10 digits")  # checked before anything is sent
    form.get_by_label("NHS number").fill("999 000 1235")
    form.get_by_label("Modality").select_option("XR")
    form.get_by_role("button", name="Check for recent imaging").click()
    verdict = form.locator(".verdict")
    expect(verdict).to_contain_text("Clear")  # nobody in the region has imaging yet
    expect(verdict).to_contain_text("not found in the regional index")
    assert page.problems == []  # type: ignore[attr-defined]
