"""Audit events: written in the same transaction as the change, chained by hash."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from payouts.audit.chain import GENESIS_HASH, event_hash
from payouts.audit.log import record_event
from payouts.db.models import AuditEvent, Incident
from payouts.domain.roles import SYSTEM_ACTOR
from payouts.services import incidents
from tests.conftest import STAFF

T = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)


def test_events_form_a_hash_chain(session):  # type: ignore[no-untyped-def]
    for n in range(3):
        incidents.record_incident(session, STAFF, ref=f"I{n}", title="t", incident_type="hack",
                                  occurred_at=T, discovered_at=T)
    events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [e.seq for e in events] == [1, 2, 3]
    prev = GENESIS_HASH
    for event in events:
        assert event.prev_hash == prev
        fields = {c: getattr(event, c) for c in ("seq", "occurred_at", "actor_user_id", "actor",
                  "actor_role", "action", "subject_type", "subject_id", "summary", "details", "request_id")}
        assert event_hash(prev, fields) == event.hash
        prev = event.hash


def test_edited_event_no_longer_matches_its_hash(session):  # type: ignore[no-untyped-def]
    event = record_event(session, SYSTEM_ACTOR, "x.done", "x", 1, "original")
    fields = {c: getattr(event, c) for c in ("seq", "occurred_at", "actor_user_id", "actor",
              "actor_role", "action", "subject_type", "subject_id", "summary", "details", "request_id")}
    fields["summary"] = "forged"
    assert event_hash(event.prev_hash, fields) != event.hash


def test_a_rolled_back_change_leaves_no_event(session):  # type: ignore[no-untyped-def]
    """Services run each action in transaction(); a failure after the event undoes both."""
    from payouts.db.session import transaction

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with transaction(session):
            session.add(Incident(ref="R", title="t", incident_type="hack", status="recorded",
                                 occurred_at=T, discovered_at=T, description=""))
            session.flush()
            record_event(session, SYSTEM_ACTOR, "incident.recorded", "incident", "R", "r")
            raise Boom
    assert session.scalar(select(AuditEvent)) is None
    assert session.scalar(select(Incident)) is None


def test_a_refused_service_action_leaves_no_event(session):  # type: ignore[no-untyped-def]
    incidents.record_incident(session, STAFF, ref="I1", title="t", incident_type="hack",
                              occurred_at=T, discovered_at=T)
    from payouts.domain.errors import ValidationError

    with pytest.raises(ValidationError):
        incidents.set_reference_price(session, STAFF, incident_ref="I1", asset_code="NOPE", price="1", source="s")
    assert [e.action for e in session.scalars(select(AuditEvent))] == ["incident.recorded"]


@pytest.mark.postgres
def test_concurrent_writers_still_make_one_gap_free_chain(pg_engine):  # type: ignore[no-untyped-def]
    """Eight writers appending at once: every event lands, seq has no gap, every link holds."""
    import threading

    from payouts.audit.verify import verify_chain
    from payouts.db.session import make_session_factory, transaction

    factory = make_session_factory(pg_engine)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with factory() as session:
                barrier.wait()
                for i in range(25):
                    with transaction(session):
                        record_event(session, SYSTEM_ACTOR, "test.written", "writer", n, f"{n}/{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with factory() as session:
        seqs = session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
        assert seqs == list(range(1, 201))
        result = verify_chain(session)
        assert result.ok, result.summary()


def test_events_written_in_bulk_chain_on_and_read_back_exactly(session):  # type: ignore[no-untyped-def]
    from payouts.audit.log import record_events
    from payouts.services import audit_trail

    record_event(session, SYSTEM_ACTOR, "x.before", "x", 0, "before")
    # Text COPY must carry unchanged: tabs, newlines, backslashes, quotes and non-ASCII.
    awkward = "tab\there\nnew line \\N back\\slash \"quoted\" 日本語"
    written = record_events(session, STAFF, [
        ("x.bulk", "x", n, f"{awkward} #{n}", {"n": n, "text": awkward} if n else None) for n in range(3)])
    record_event(session, SYSTEM_ACTOR, "x.after", "x", 9, "after")
    session.commit()
    assert written == 3
    events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [(e.seq, e.action, e.subject_id) for e in events] == [
        (1, "x.before", "0"), (2, "x.bulk", "0"), (3, "x.bulk", "1"), (4, "x.bulk", "2"), (5, "x.after", "9")]
    bulk = events[1:4]
    assert [e.summary for e in bulk] == [f"{awkward} #{n}" for n in range(3)]
    assert bulk[0].details == "{}" and json.loads(bulk[1].details) == {"n": 1, "text": awkward}
    assert all(e.actor == STAFF.label and e.occurred_at.tzinfo is not None for e in bulk)
    result = audit_trail.verify(session, SYSTEM_ACTOR)
    assert result.problem is None and result.count == 5


def test_bulk_events_may_come_from_a_generator_that_reads_the_database(session, monkeypatch):  # type: ignore[no-untyped-def]
    from sqlalchemy import func

    import payouts.audit.log as log
    from payouts.services import audit_trail

    monkeypatch.setattr(log, "_BATCH", 2)  # several batches, each chaining on from the last

    def events():  # type: ignore[no-untyped-def]
        for n in range(5):
            seen = session.scalar(select(func.count()).select_from(AuditEvent))
            yield ("x.read", "x", n, f"saw {seen} events", None)

    assert log.record_events(session, SYSTEM_ACTOR, events()) == 5
    session.commit()
    # Each batch is written before the generator is read again.
    assert session.scalars(select(AuditEvent.summary).order_by(AuditEvent.seq)).all() == [
        "saw 0 events", "saw 0 events", "saw 2 events", "saw 2 events", "saw 4 events"]
    assert audit_trail.verify(session, SYSTEM_ACTOR).problem is None
