"""The incident report page and CSV: the seeded incident paid through the sandbox bank, read by
staff and by a regulator (whose every view and export is itself recorded), refused to customers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from sqlalchemy import select, update

from payouts.db.models import AuditEvent, Claim, Customer
from payouts.domain.roles import Role
from tests.web.test_disbursement_pages import fund_and_commit

INCIDENT = "/staff/incidents/INC-1"
OCCURRED = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)  # tests/web/conftest.py's seed


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def section(html: str, section_id: str) -> str:
    return html.split(f'id="{section_id}"', 1)[1].split("</section>", 1)[0]


def set_paid_at(app, **after: dt.timedelta) -> None:  # type: ignore[no-untyped-def]
    """Known payment times: customer ref -> time after the incident."""
    session = app.extensions["payouts"].session_factory()
    try:
        for ref, delta in after.items():
            customer_id = session.scalar(select(Customer.id).where(Customer.external_ref == ref))
            session.execute(update(Claim).where(Claim.customer_id == customer_id).values(paid_at=OCCURRED + delta))
        session.commit()
    finally:
        session.close()


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.fixture
def paid(app, approved_claims):  # type: ignore[no-untyped-def]
    """INC-1 paid in full from the reserve: C1 one day and two hours after the incident, C2 three days."""
    fund_and_commit(app)
    set_paid_at(app, C1=dt.timedelta(days=1, hours=2), C2=dt.timedelta(days=3))


@pytest.mark.usefixtures("paid")
def test_staff_read_the_printable_report(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    page = client.get(f"{INCIDENT}/report")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Incident report: INC-1</h1>" in html
    facts = text_of(section(html, "facts"))
    assert "Title Test hack" in facts and "Type Hack" in facts
    assert "Occurred 2026-01-05 18:00 JST" in facts and "Customers affected 2" in facts
    claims = text_of(section(html, "claims"))
    assert "Paid 2 JPY 17,500,000" in claims and "All claims 2 JPY 17,500,000" in claims
    assert "Approved 0 JPY 0" in claims
    amounts = text_of(section(html, "amounts"))
    for label in ("Total claimed", "Eligible", "Funded", "Paid to customers"):
        assert f"{label} JPY 17,500,000" in amounts, label
    assert "Shortfall JPY 0" in amounts and "Outstanding (funded, not yet paid) JPY 0" in amounts
    sources = text_of(section(html, "sources"))
    assert "Reserve JPY 17,500,000 — JPY 17,500,000 JPY 17,500,000 JPY 0" in sources
    timing = section(html, "time-to-payment")
    facts = text_of(timing)
    assert "Customers paid 2" in facts and "Customers still unpaid 0" in facts
    assert "Median 1 d 2 h" in facts and "90th percentile 3 d 0 h" in facts
    # The chart is inline SVG with a title and description, and the same figures as a table.
    assert '<svg class="chart"' in timing and 'role="img"' in timing and "<script" not in html
    assert 'aria-labelledby="ttp-title ttp-desc"' in timing and timing.count("<rect ") == 5
    table = text_of(timing.split("<caption>", 1)[1])
    assert "0–1 days 0 1–2 days 1 2–3 days 0 3–4 days 1 4 days or more 0" in table
    # Printing: navigation sits in elements the print stylesheet hides.
    assert '<nav class="subnav"' in html and 'href="/staff/incidents/INC-1/report.csv"' in html
    # Linked from the incident and from the reconciliation.
    for url in (INCIDENT, f"{INCIDENT}/reconciliation"):
        assert 'href="/staff/incidents/INC-1/report"' in client.get(url).text, url


@pytest.mark.usefixtures("paid")
def test_staff_export_the_report_as_csv(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.APPROVER)
    exported = client.get(f"{INCIDENT}/report.csv")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    assert exported.headers["Content-Disposition"] == "attachment; filename=incident-report-INC-1.csv"
    rows = csv_rows(exported.text)
    summary = {r[1]: r[2] for r in rows if r and r[0] == "summary"}
    assert summary["incident_ref"] == "INC-1" and summary["occurred_at_jst"] == "2026-01-05T18:00:00+09:00"
    assert summary["customers_affected"] == "2" and summary["total_claimed_jpy"] == "17500000"
    assert (summary["eligible_jpy"], summary["funded_jpy"], summary["shortfall_jpy"]) == ("17500000", "17500000", "0")
    assert (summary["paid_jpy"], summary["outstanding_jpy"]) == ("17500000", "0")
    assert ["section", "source", "allocated_jpy", "owed_by_insurer_jpy", "received_from_insurer_jpy",
            "instructed_jpy", "paid_jpy", "outstanding_jpy"] in rows
    assert ["by_source", "reserve", "17500000", "", "", "17500000", "17500000", "0"] in rows
    assert ["claims_by_state", "paid", "2", "17500000"] in rows
    assert ["claims_by_state", "total", "2", "17500000"] in rows
    assert ["time_to_payment", "median", str(26 * 3600), "1", "2", "26"] in rows
    assert ["time_to_payment", "p90", str(3 * 86400), "3", "0", "72"] in rows
    assert ["time_to_payment", "customers_paid", "2", "", "", ""] in rows
    histogram = [r[1:] for r in rows if r and r[0] == "histogram"]
    assert histogram == [["0", "1", "0"], ["1", "2", "1"], ["2", "3", "0"], ["3", "4", "1"], ["4", "", "0"]]


@pytest.mark.usefixtures("paid")
def test_a_regulators_view_and_export_are_recorded(app, client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.REGULATOR)
    page = client.get(f"{INCIDENT}/report")
    assert page.status_code == 200 and '<form method="post"' not in page.text.split("<main", 1)[1]
    assert client.get(f"{INCIDENT}/report.csv").status_code == 200
    session = app.extensions["payouts"].session_factory()
    try:
        viewed = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "regulator.viewed")
                                      .order_by(AuditEvent.seq)))
    finally:
        session.close()
    subjects = [e.subject_id for e in viewed]
    assert f"{INCIDENT}/report" in subjects and f"{INCIDENT}/report.csv" in subjects
    assert all(e.actor_role == "regulator" for e in viewed)


@pytest.mark.usefixtures("paid")
def test_staff_views_are_not_recorded_as_regulator_views(app, client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    assert client.get(f"{INCIDENT}/report").status_code == 200
    session = app.extensions["payouts"].session_factory()
    try:
        assert session.scalar(select(AuditEvent).where(AuditEvent.action == "regulator.viewed")) is None
    finally:
        session.close()


def test_the_report_before_anything_is_allocated(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.REGULATOR)
    client.get("/lang/en")
    page = client.get(f"{INCIDENT}/report")
    assert page.status_code == 200
    assert "Customers affected 2" in text_of(section(page.text, "facts"))
    assert "Nothing has been allocated for this incident yet." in page.text
    assert "No customer has been paid in full yet." in page.text and "<svg" not in page.text
    rows = csv_rows(client.get(f"{INCIDENT}/report.csv").text)
    assert ["summary", "eligible_jpy", "0"] in rows and not [r for r in rows if r and r[0] == "histogram"]


def test_japanese_by_default(app, client_for, approved_claims):  # type: ignore[no-untyped-def]
    fund_and_commit(app)
    page = client_for(Role.STAFF).get(f"{INCIDENT}/report", headers={"Accept-Language": "ja"})
    assert '<html lang="ja">' in page.text and "¥17,500,000" in page.text and "JPY" not in page.text


@pytest.mark.parametrize("role", [Role.CUSTOMER, "other"])
def test_customers_get_403(client_for, role):  # type: ignore[no-untyped-def]
    client = client_for(role)
    for url in (f"{INCIDENT}/report", f"{INCIDENT}/report.csv"):
        assert client.get(url).status_code == 403, url


def test_unknown_incident_is_404(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    assert client.get("/staff/incidents/NOPE/report").status_code == 404
    assert client.get("/staff/incidents/NOPE/report.csv").status_code == 404
