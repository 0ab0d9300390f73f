"""The audit trail in the back office: filters, verification, checkpoints, regulators' views logged."""

from __future__ import annotations

from sqlalchemy import select, text

from payouts.db.models import AuditEvent
from payouts.domain.roles import Role
from tests.web.conftest import csrf_token


def test_log_filters_by_action_and_subject(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    page = client.get("/staff/audit", query_string={"action": "price.", "subject_id": "INC-1"}).text
    assert "price.set" in page and "losses.imported" not in page
    everything = client.get("/staff/audit").text
    assert "losses.imported" in everything and "incident.recorded" in everything


def test_cursor_pages_through_older_events(client_for, app):  # type: ignore[no-untyped-def]
    from payouts.audit.log import record_event
    from payouts.domain.roles import SYSTEM_ACTOR

    session = app.extensions["payouts"].session_factory()
    for n in range(60):
        record_event(session, SYSTEM_ACTOR, "test.filled", "test", n, f"filler {n}")
    session.commit()
    session.close()
    client = client_for(Role.STAFF)
    first = client.get("/staff/audit", query_string={"action": "test."}).text
    assert "filler 59" in first and "filler 9<" not in first
    older = client.get("/staff/audit", query_string={"action": "test.", "before": _oldest_seq_on(first)}).text
    assert "filler 9<" in older and "filler 59" not in older


def _oldest_seq_on(page: str) -> int:
    import re

    return min(int(s) for s in re.findall(r"<tr><td>(\d+)</td>", page))


def test_verification_page_and_a_checkpoint(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    page = client.get("/staff/audit/verify")
    assert "The chain verifies" in page.text
    response = client.post("/staff/audit/checkpoints", data={"csrf_token": csrf_token(page.text),
                                                            "note": "monthly filing"})
    assert response.status_code == 302
    assert "monthly filing" in client.get("/staff/audit/verify").text


def test_a_tampered_chain_is_shown_as_such(client_for, app):  # type: ignore[no-untyped-def]
    engine = app.extensions["payouts"].engine
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # a table owner can switch the guard off
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        conn.execute(text("UPDATE audit_events SET summary = 'forged' WHERE seq = 2"))
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    page = client.get("/staff/audit/verify").text
    assert "does NOT verify" in page and "seq 2" in page


def test_what_a_regulator_views_is_recorded(client_for, app):  # type: ignore[no-untyped-def]
    client = client_for(Role.REGULATOR)
    assert client.get("/staff/incidents/INC-1").status_code == 200
    assert client.get("/staff/adequacy/stress.csv").status_code == 200
    session = app.extensions["payouts"].session_factory()
    viewed = [e.summary for e in session.scalars(select(AuditEvent).where(AuditEvent.action == "regulator.viewed"))]
    session.close()
    assert any("/staff/incidents/INC-1" in s for s in viewed)
    assert any("/staff/adequacy/stress.csv" in s for s in viewed)


def test_a_long_filtered_address_is_recorded_whole(client_for, app):  # type: ignore[no-untyped-def]
    import json

    long_filter = "/staff/audit?actor=&action=regulator.&subject_type=page&subject_id=&since=&until=&x=" + "y" * 200
    assert client_for(Role.REGULATOR).get(long_filter).status_code == 200
    session = app.extensions["payouts"].session_factory()
    events = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "regulator.viewed")))
    session.close()
    assert any(json.loads(e.details).get("path") == long_filter for e in events)


def test_staff_views_are_not_logged_as_regulator_views(client_for, app):  # type: ignore[no-untyped-def]
    client_for(Role.STAFF).get("/staff/incidents/INC-1")
    session = app.extensions["payouts"].session_factory()
    assert session.scalar(select(AuditEvent).where(AuditEvent.action == "regulator.viewed")) is None
    session.close()


def test_odd_query_strings_are_ignored_not_crashed(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    for query in ({"endpoint": "x"}, {"_method": "POST"}, {"_external": "1", "action": "price."},
                  {"since": "0001-01-01"}, {"until": "9999-12-31"}, {"before": "100000000000000000000"}):
        assert client.get("/staff/audit", query_string=query).status_code == 200, query
    for as_of in ("0001-01-01", "9999-12-31", "not-a-date"):
        assert client.get("/staff/adequacy", query_string={"as_of": as_of}).status_code == 200, as_of
