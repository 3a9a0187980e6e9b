"""The workspace in headless Chromium (Debian's /usr/bin/chromium; never a downloaded browser).

A radiographer signs in and opens the day's worklist; an HL7 order arrives over MLLP at another ``serve`` worker and
its alert appears without reloading, with the count; they open the request (patient banner, the prior at another
trust with one click to its images), the patient's timeline across the trusts, and override the alert with a coded
reason, by keyboard alone; the override is stored and audited. Every view passes axe-core (WCAG 2.2 A and AA rules)
with no serious or critical violation, at workstation and tablet widths, and shows UK dates and London times in a
browser set to New York and US English.

Screenshots of each view go to ``$PRIORSCAN_SCREENSHOT_DIR`` (``docs/screenshots`` for the README), else to the
test's temporary folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_factories import PASSWORD, make_user
from fixed_dates import AS_OF
from sqlalchemy import select
from workspace_factories import ServeWorker, add_patient, add_study, london, nhs_number, request

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
WORKSTATION = {"width": 1366, "height": 900}
TABLET = {"width": 768, "height": 1024}
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


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
    # a browser in another zone and locale: what the page shows must not follow them
    context = browser.new_context(viewport=WORKSTATION, locale="en-US", timezone_id="America/New_York")
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" and "status of 401" not in m.text
            else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems  # type: ignore[attr-defined]
    yield page
    context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PRIORSCAN_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def axe_check(page: Any, view: str) -> None:
    """axe-core's WCAG 2.2 A/AA rules on the page as it is: no serious or critical violation."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG}, "resultTypes": ["violations"]})
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in results.response["violations"]
           if v["impact"] in ("serious", "critical")]
    assert bad == [], f"axe on the {view}: {bad}"


def _sign_in(page: Any, base_url: str, username: str = "rad.one", password: str = PASSWORD) -> None:
    page.goto(base_url + "/ui/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def tab_to(page: Any, predicate: str, limit: int = 60) -> None:
    """Press Tab until the focused element satisfies ``predicate`` (a JS expression over ``el``)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const el = document.activeElement; return !!(el && ({predicate})); }})()"):
            return
    raise AssertionError(f"Tab never reached {predicate}")


def orm(nhs: str, *, placer: str, when: str, msg: str) -> str:
    """An ORM^O01 from RTK's order entry: CT head for the patient with hospital number AB000001."""
    return "\r".join([
        f"MSH|^~\\&|EPR|RTK|PRIORSCAN|REGION|{when}||ORM^O01|{msg}|P|2.4",
        f"PID|1||AB000001^^^RTK^MR~{nhs}^^^NHS^NH||OKAFOR^ADAEZE||19700517|F",
        f"ORC|NW|{placer}^RTK||||||{when}",
        f"OBR|1|{placer}||CTHEAD^CT Head|||{when}||||||Headache, ?bleed|||||||||||||||||",
    ]) + "\r"


def seed_region(context: Any) -> str:
    """Okafor at RTK and RYR with a CT head at RYR ten days ago; another RTK patient's clear X-ray request today."""
    number = nhs_number(1)
    with context.sessions() as session:
        add_patient(session, context.trusts, trust="RTK", local_id="AB000001", nhs=number)
        _, ryr = add_patient(session, context.trusts, trust="RYR", local_id="00000001", nhs=number)
        add_study(session, ryr, on=AS_OF, days_ago=10, trust="RYR", dose=1.9, dlp=950, ctdivol=52,
                  description="CT HEAD WITHOUT CONTRAST")
        add_study(session, ryr, on=AS_OF, days_ago=400, trust="RYR", modality="CT", region="chest", dose=5.6,
                  description="CT CHEST WITH CONTRAST")
        other = nhs_number(2)
        add_patient(session, context.trusts, trust="RTK", local_id="AB000002", nhs=other, family="Price",
                    given="Tomasz", birth_date=None, sex="male")
        request(session, context.trusts, nhs=other, at=london(AS_OF, 8, 40), placer="ORD-XR-1", modality="XR",
                body_site="left knee")
        session.commit()
    return number


def test_the_accessibility_check_finds_what_it_should(page: Any) -> None:
    """axe_check is not a check that cannot fail: an unlabelled field and an image without text fail it."""
    page.set_content('<html lang="en"><body><main><h1>x</h1><input type="text"><img src="data:,"></main></body></html>')
    with pytest.raises(AssertionError, match="label|image-alt"):
        axe_check(page, "a bad page")


def test_sign_in_is_refused_with_a_wrong_password(page: Any, live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    make_user(live_server_sqlite.context)
    _sign_in(page, live_server_sqlite.base_url, password="not the password")
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.get_by_label("Password").input_value() == ""
    assert page.problems == []  # type: ignore[attr-defined]


def test_radiographer_works_the_day_live(page: Any, live_server_sqlite, shots: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    from api.http.routers.ui import override_reasons
    from dedupe.tables import Alert
    from priorscan.tables import AuditEvent

    context, base = live_server_sqlite.context, live_server_sqlite.base_url
    number = seed_region(context)
    make_user(context)
    reason = next(r for r in override_reasons(context.settings.rules_file) if "protocol" in r.display.lower())

    _sign_in(page, base)
    expect(page.get_by_role("heading", name=re.compile("^Worklist"))).to_be_visible()
    page.goto(f"{base}/ui/#/worklist?date={AS_OF.isoformat()}")
    expect(page.get_by_text(f"Requests for {AS_OF:%A} {AS_OF.day} {AS_OF:%B %Y}")).to_be_visible()
    table = page.get_by_role("table", name=re.compile("Requests"))
    expect(table.get_by_role("row")).to_have_count(2)  # the header and the clear X-ray request
    expect(page.get_by_text("Live updates on")).to_be_visible()
    expect(page.locator("#menu-count-worklist")).to_have_text("0")
    axe_check(page, "worklist")
    page.screenshot(path=str(shots / "worklist.png"), full_page=True)

    with ServeWorker(str(context.engine.url)) as worker:  # another serve worker, its own MLLP port
        when = london(AS_OF, 10, 15).astimezone(__import__("zoneinfo").ZoneInfo("Europe/London"))
        ack = worker.send_hl7(orm(number, placer="ORD-LIVE-1", when=when.strftime("%Y%m%d%H%M%S"), msg="M-LIVE-1"))
        assert "MSA|AA|M-LIVE-1" in ack
    row = table.locator('tr[data-request-id^="order-"]', has_text="ORD-LIVE-1")
    expect(row).to_be_visible()  # appeared without reloading
    expect(row).to_contain_text("Warning")
    expect(row).to_contain_text("New")
    expect(row).to_contain_text("OKAFOR, Adaeze")
    expect(row).to_contain_text(f"NHS {number[:3]} {number[3:6]} {number[6:]}")
    expect(row).to_contain_text("10 days")  # the nearest comparable prior
    expect(row).to_contain_text("10:15 BST")  # London time, though the browser is in New York
    expect(page.locator("#menu-count-worklist")).to_have_text("1")
    expect(page.get_by_role("link", name=re.compile("Worklist, 1 alert to review"))).to_be_visible()
    first_row = table.locator("tbody tr").first
    expect(first_row).to_contain_text("ORD-LIVE-1")  # warnings first
    page.screenshot(path=str(shots / "worklist-live.png"), full_page=True)

    # keyboard only: from the top of the page to the new request, and into it
    page.locator("body").focus()
    tab_to(page, "el.classList.contains('row-link') && el.closest('tr').textContent.includes('ORD-LIVE-1')")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1, name=re.compile("CT Head"))).to_be_focused()
    banner = page.get_by_role("region", name="Patient: OKAFOR, Adaeze")
    expect(banner).to_contain_text(re.compile(r"17 May 1970 \(\d+ years\)"))  # UK format; the age is today's
    expect(banner).to_contain_text(f"{number[:3]} {number[3:6]} {number[6:]}")
    expect(banner).to_contain_text("Female")
    expect(banner).to_contain_text("AB000001")
    known = page.get_by_role("region", name="Known at these trusts")
    expect(known).to_contain_text("University Hospitals Sussex NHS Foundation Trust (RYR)")
    prior = page.locator("li.prior").first
    expect(prior).to_contain_text("CT HEAD WITHOUT CONTRAST")
    expect(prior).to_contain_text("University Hospitals Sussex NHS Foundation Trust (RYR)")
    expect(prior).to_contain_text("10 days before the request")
    expect(prior).to_contain_text("≈ 1.9 mSv (estimate)")
    view = prior.get_by_role("link", name=re.compile("View images: CT HEAD WITHOUT CONTRAST"))
    assert "trust=RYR" in (view.get_attribute("href") or "")
    assert view.get_attribute("target") == "_blank" and "noopener" in (view.get_attribute("rel") or "")
    axe_check(page, "request view")
    page.screenshot(path=str(shots / "request.png"), full_page=True)

    # the patient's imaging across the region
    page.get_by_role("link", name="Imaging history across the region and dose").click()
    expect(page.get_by_role("heading", level=1, name=re.compile("Imaging across the region"))).to_be_visible()
    dose = page.get_by_role("table", name=re.compile("Ionising studies across the region"))
    expect(dose.get_by_role("row", name=re.compile("Last 30 days"))).to_contain_text("≈ 1.9 mSv")
    expect(dose.get_by_role("row", name=re.compile("All on record"))).to_contain_text("≈ 7.5 mSv")
    timeline = page.locator("ol.timeline")
    expect(timeline).to_contain_text("CT HEAD WITHOUT CONTRAST")
    expect(timeline).to_contain_text("Above national DRL")
    expect(timeline).to_contain_text("Alert: CT Head")
    axe_check(page, "patient view")
    page.screenshot(path=str(shots / "patient.png"), full_page=True)
    page.go_back()
    expect(page.get_by_role("heading", level=1, name=re.compile("CT Head"))).to_be_visible()

    # override with a coded reason, by keyboard alone
    page.get_by_role("heading", level=1).focus()
    tab_to(page, "el.name === 'reason'")
    page.get_by_role("button", name="Record override").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("Choose a reason")
    radio = page.get_by_role("radio", name=reason.display)
    radio.focus()
    page.keyboard.press("Space")
    expect(radio).to_be_checked()
    page.get_by_label("Comment", exact=True).focus()
    page.keyboard.type("Arterial phase needed; prior was non-contrast.")
    page.screenshot(path=str(shots / "override.png"), full_page=True)
    page.get_by_role("button", name="Record override").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("Alert overridden")
    decision = page.get_by_role("region", name="Decision")
    expect(decision).to_contain_text("Overridden")
    expect(decision).to_contain_text(reason.display)
    expect(page.locator("#menu-count-worklist")).to_have_text("0")

    with context.sessions() as session:
        alert = session.scalars(select(Alert).where(Alert.placer_order_number == "ORD-LIVE-1")).one()
        assert (alert.status, alert.reason_code, alert.acted_by) == ("overridden", reason.code, "rad.one")
        assert alert.comment == "Arterial phase needed; prior was non-contrast."
        audited = session.scalars(select(AuditEvent).where(AuditEvent.event_type == "alert",
                                                           AuditEvent.subtype == "overridden")).one()
        assert (audited.agent_name, audited.regional_patient_id) == ("rad.one", alert.regional_patient_id)
        views = session.scalars(select(AuditEvent.subtype).where(AuditEvent.event_type == "workspace",
                                                                 AuditEvent.regional_patient_id
                                                                 == alert.regional_patient_id)).all()
        assert {"worklist", "request-view", "patient-view"} <= set(views)

    # tablet width
    page.set_viewport_size(TABLET)
    axe_check(page, "request view (tablet)")
    page.screenshot(path=str(shots / "request-tablet.png"), full_page=True)
    page.get_by_role("link", name="Back to the worklist").click()
    expect(page.locator("tbody tr").first).to_contain_text("Overridden")
    axe_check(page, "worklist (tablet)")
    page.screenshot(path=str(shots / "worklist-tablet.png"), full_page=True)
    assert page.problems == []  # type: ignore[attr-defined]


def test_the_worklist_date_is_typed_day_month_year(page: Any, live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    seed_region(live_server_sqlite.context)
    make_user(live_server_sqlite.context)
    _sign_in(page, live_server_sqlite.base_url)
    expect(page.get_by_role("heading", name=re.compile("^Worklist"))).to_be_visible()
    group = page.get_by_role("group", name="Day")
    group.get_by_label("Day").fill(str(AS_OF.day))
    group.get_by_label("Month").fill(str(AS_OF.month))
    group.get_by_label("Year").fill(str(AS_OF.year))
    page.get_by_role("button", name="Show requests").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("ORD-XR-1")
    group = page.get_by_role("group", name="Day")
    group.get_by_label("Month").fill("13")  # no 13th month: refused before anything is sent
    page.get_by_role("button", name="Show requests").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter a real date")
    assert page.problems == []  # type: ignore[attr-defined]


def test_check_a_request_shows_the_verdict(page: Any, live_server_sqlite, shots: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    make_user(live_server_sqlite.context)
    _sign_in(page, live_server_sqlite.base_url)
    page.get_by_role("link", name="Check a request").click()
    form = page.get_by_role("form", name="Check a request")
    form.get_by_label("NHS number").fill("999 000 123")
    form.get_by_label("Body site").fill("chest")
    form.get_by_role("button", name="Check for recent imaging").click()
    expect(form.get_by_role("alert")).to_contain_text("10 digits")  # checked before anything is sent
    form.get_by_label("NHS number").fill("999 000 1235")
    birth = form.get_by_role("group", name="Date of birth")
    birth.get_by_label("Day").fill("31")
    birth.get_by_label("Month").fill("2")
    birth.get_by_label("Year").fill("1970")
    form.get_by_role("button", name="Check for recent imaging").click()
    expect(form.get_by_role("alert")).to_contain_text("real date")
    birth.get_by_label("Day").fill("17")
    birth.get_by_label("Month").fill("5")
    form.get_by_label("Modality").select_option("XR")
    form.get_by_role("button", name="Check for recent imaging").click()
    verdict = page.locator(".verdict")
    expect(verdict).to_contain_text("Clear")  # nobody in the region has imaging yet
    expect(verdict).to_contain_text("not found in the regional index")
    axe_check(page, "check a request")
    page.screenshot(path=str(shots / "check.png"), full_page=True)
    assert page.problems == []  # type: ignore[attr-defined]


def test_an_admin_sees_the_feeds_and_the_quiet_one_first(page: Any, live_server_sqlite, shots: Path) -> None:  # type: ignore[no-untyped-def]
    """The feed health of `priorscan status` on the page, for admins only (issue 21)."""
    from datetime import timedelta

    from priorscan.db import utcnow
    from priorscan.tables import HL7MessageLog

    context = live_server_sqlite.context
    make_user(context, "admin.one", role="admin", trust=None)
    make_user(context, "rad.two", trust="RTK")
    now = utcnow()
    with context.sessions() as session:  # RYR's ADT sent every 5 minutes until an hour ago; RTK's until now
        for facility, start in (("RYR", now - timedelta(hours=3)), ("RTK", now - timedelta(hours=2))):
            for n in range(24):
                session.add(HL7MessageLog(sending_application="PAS", sending_facility=facility,
                                          control_id=f"{facility}-{n}", message_type="ADT^A08", ack_code="AA",
                                          ack_text="", received_at=start + timedelta(minutes=5 * n)))
        session.commit()
    _sign_in(page, live_server_sqlite.base_url, "admin.one")
    page.get_by_role("link", name="Feeds").click()
    page.get_by_role("heading", name="Feeds").wait_for()
    rows = page.locator("table tbody tr")
    rows.first.wait_for()
    assert rows.count() == 2
    first = rows.nth(0).inner_text()
    assert "University Hospitals Sussex" in first or "RYR" in first
    assert "Quiet for" in first and "Flowing" in rows.nth(1).inner_text()
    axe_check(page, "feeds")
    page.screenshot(path=str(shots / "feeds.png"), full_page=True)
    assert not page.problems  # type: ignore[attr-defined]

    page.context.clear_cookies()  # a radiographer's menu has no Feeds
    _sign_in(page, live_server_sqlite.base_url, "rad.two")
    page.get_by_role("link", name="Worklist").first.wait_for()
    assert page.get_by_role("link", name="Feeds").count() == 0
