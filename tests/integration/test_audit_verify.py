"""Verifying the audit chain: each kind of tampering is named at its first bad seq (on SQLite,
and on PostgreSQL with PAYOUTS_TEST_DATABASE_URL), and the standalone export verifier
(tools/verify_audit_export.py) agrees with the application line for line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from payouts.audit import verify as verify_module
from payouts.audit.chain import GENESIS_HASH, event_hash
from payouts.audit.log import record_event
from payouts.audit.verify import Checkpoint, Failure, verify_chain
from payouts.db.models import AuditCheckpoint, AuditEvent
from payouts.db.session import make_session_factory, transaction
from payouts.domain.errors import PermissionDenied, ValidationError
from payouts.domain.roles import SYSTEM_ACTOR, Actor, Role
from payouts.services import audit_trail
from tests.conftest import REGULATOR, STAFF

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "verify_audit_export.py"
CLI = Path(sys.executable).parent / "payouts"
EVENTS = AuditEvent.__table__
CLERK = Actor(label="clerk@exchange.example", role=Role.STAFF, user_id=7, request_id="req-0001")
CUSTOMER = Actor(label="customer@test", role=Role.CUSTOMER)


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stream in batches of 4, so every chain here crosses batch boundaries mid-verification."""
    monkeypatch.setattr(verify_module, "BATCH_SIZE", 4)


def add_events(factory, count: int) -> None:  # type: ignore[no-untyped-def]
    """Events whose text exercises canonical JSON: quotes, backslashes, controls, non-ASCII."""
    with factory() as session:
        for n in range(count):
            with transaction(session):
                actor = CLERK if n % 2 else SYSTEM_ACTOR
                record_event(session, actor, "test.recorded", "thing", n,
                             f"事象 {n}: \"quoted\" \\ tab\t newline\n bell\x07 \u2028 nel\x85 ¥1,000 🙂",
                             {"amount_jpy": [n, n + 1], "名前": "テスト", "nested": {"b": None, "a": True}})


def head_hash(factory, seq: int) -> str:  # type: ignore[no-untyped-def]
    with factory() as session:
        return session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == seq))


@pytest.fixture
def chain(engine: Engine):  # type: ignore[no-untyped-def]
    """12 events; checkpoint #1 covers seq 8 (event 9 records it)."""
    factory = make_session_factory(engine)
    add_events(factory, 8)
    with factory() as session:
        checkpoint = audit_trail.record_checkpoint(session, STAFF, "monthly report, November")
    assert checkpoint.seq == 8
    add_events(factory, 3)
    return factory


def verify_db(factory, published=()):  # type: ignore[no-untyped-def]
    with factory() as session:
        return verify_chain(session, [*verify_module.recorded_checkpoints(session), *published])


@contextmanager
def tampering(engine: Engine) -> Iterator[Connection]:
    """A connection as a database administrator has it: on PostgreSQL the append-only triggers
    are disabled (as the tables' owner may) for the length of the tampering."""
    with engine.begin() as conn:
        pg = conn.dialect.name == "postgresql"
        if pg:
            for table in ("audit_events", "audit_checkpoints"):
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only"))
        yield conn
        if pg:
            for table in ("audit_events", "audit_checkpoints"):
                conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only"))


def _row(conn: Connection, seq: int) -> dict:  # type: ignore[type-arg]
    return dict(conn.execute(select(EVENTS).where(EVENTS.c.seq == seq)).mappings().one())


def edit(conn: Connection) -> None:
    conn.execute(update(EVENTS).where(EVENTS.c.seq == 4).values(summary="forged"))


def edit_first_prev_hash(conn: Connection) -> None:
    conn.execute(update(EVENTS).where(EVENTS.c.seq == 1).values(prev_hash="1" * 64))


def delete_middle(conn: Connection) -> None:
    conn.execute(delete(EVENTS).where(EVENTS.c.seq == 4))


def delete_first(conn: Connection) -> None:
    conn.execute(delete(EVENTS).where(EVENTS.c.seq == 1))


def _shift_up(conn: Connection, from_seq: int) -> None:
    # In two steps: neither database may see two rows with one seq, even mid-statement.
    conn.execute(update(EVENTS).where(EVENTS.c.seq >= from_seq).values(seq=EVENTS.c.seq + 1_000_000))
    conn.execute(update(EVENTS).where(EVENTS.c.seq >= 1_000_000).values(seq=EVENTS.c.seq - 999_999))


def insert_forged(conn: Connection) -> None:
    """A forged event slipped in at seq 4 with a correct hash and link; later events renumbered."""
    _shift_up(conn, 4)
    fields = _row(conn, 3)
    fields.update(seq=4, actor="intruder", summary="backdated approval", details="{}")
    fields["prev_hash"] = fields["hash"]
    fields["hash"] = event_hash(fields["prev_hash"], fields)
    conn.execute(insert(EVENTS).values(**fields))


def _swap(conn: Connection, a: int, b: int) -> None:
    for old, new in ((a, 1_000_000), (b, a), (1_000_000, b)):
        conn.execute(update(EVENTS).where(EVENTS.c.seq == old).values(seq=new))


def swap_apart(conn: Connection) -> None:
    _swap(conn, 3, 7)


def swap_adjacent(conn: Connection) -> None:
    _swap(conn, 5, 6)


def _rewrite(conn: Connection, seq: int, through: int) -> None:
    """Change event ``seq`` and re-hash it and every event up to ``through``, as a forger would."""
    prev = _row(conn, seq - 1)["hash"] if seq > 1 else GENESIS_HASH
    for n in range(seq, through + 1):
        fields = _row(conn, n)
        if n == seq:
            fields["summary"] = "rewritten"
        fields["prev_hash"] = prev
        fields["hash"] = prev = event_hash(prev, fields)
        conn.execute(update(EVENTS).where(EVENTS.c.seq == n).values(
            summary=fields["summary"], prev_hash=fields["prev_hash"], hash=fields["hash"]))


def rewrite_one_rehashed(conn: Connection) -> None:
    _rewrite(conn, 4, through=4)


def rewrite_rest_rehashed(conn: Connection) -> None:
    _rewrite(conn, 4, through=12)


def truncate_after_checkpoint(conn: Connection) -> None:
    conn.execute(delete(EVENTS).where(EVENTS.c.seq >= 6))


def checkpoint_edited(conn: Connection) -> None:
    conn.execute(update(AuditCheckpoint.__table__).values(hash="f" * 64))


TAMPERING: list[tuple[Callable[[Connection], None], int, Failure, str]] = [
    (edit, 4, Failure.EDITED, "event 4 does not match its hash"),
    (edit_first_prev_hash, 1, Failure.EDITED, "does not follow the genesis hash"),
    (delete_middle, 4, Failure.DELETED, "event 4 is missing"),
    (delete_first, 1, Failure.DELETED, "event 1 is missing"),
    (insert_forged, 4, Failure.INSERTED, "event 4 was inserted: event 5 was written as event 4"),
    (swap_apart, 3, Failure.REORDERED, "event 3 names event 6, which comes after it"),
    (swap_adjacent, 5, Failure.REORDERED, "event 5 names event 6, which comes after it"),
    (rewrite_one_rehashed, 5, Failure.BROKEN_LINK, "event 5 is intact but does not follow event 4"),
    (rewrite_rest_rehashed, 8, Failure.CHECKPOINT_MISMATCH, "checkpoint #1 has hash"),
    (truncate_after_checkpoint, 6, Failure.TRUNCATED, "checkpoint #1 is at seq 8, beyond the head (seq 5)"),
    (checkpoint_edited, 8, Failure.CHECKPOINT_MISMATCH, "the chain was rewritten at or before seq 8"),
]


def export(factory, path: Path) -> Path:  # type: ignore[no-untyped-def]
    with factory() as session, path.open("w", encoding="utf-8") as out:
        for record in audit_trail.export_records(session, REGULATOR):
            out.write(audit_trail.export_line(record))
    return path


def run_script(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), str(path), *args], capture_output=True,
                          text=True, timeout=60, check=False, env={**os.environ, "PYTHONIOENCODING": "utf-8"})


def assert_script_agrees(result, done: subprocess.CompletedProcess[str]) -> None:  # type: ignore[no-untyped-def]
    assert done.returncode == (0 if result.ok else 1), done.stderr
    assert (done.stdout if result.ok else done.stderr).strip() == result.summary()


# --- a clean chain ----------------------------------------------------------------------------


def test_a_clean_chain_passes_and_the_script_agrees(chain, tmp_path):  # type: ignore[no-untyped-def]
    result = verify_db(chain)
    assert result.ok and result.problem is None
    assert (result.count, result.head_seq, result.checkpoints) == (12, 12, 1)
    assert result.head_hash == head_hash(chain, 12)
    assert result.summary().startswith("OK: 12 events, head seq 12 hash ")
    done = run_script(export(chain, tmp_path / "audit.jsonl"))
    assert_script_agrees(result, done)


def test_an_empty_chain_passes(engine, tmp_path):  # type: ignore[no-untyped-def]
    factory = make_session_factory(engine)
    result = verify_db(factory)
    assert result.ok and (result.count, result.head_seq, result.head_hash) == (0, 0, GENESIS_HASH)
    assert_script_agrees(result, run_script(export(factory, tmp_path / "empty.jsonl")))


def test_the_export_carries_every_hashed_field_then_the_checkpoints(chain, tmp_path):  # type: ignore[no-untyped-def]
    lines = [json.loads(line) for line in export(chain, tmp_path / "a.jsonl").read_text("utf-8").splitlines()]
    assert [r["type"] for r in lines] == ["event"] * 12 + ["checkpoint"]
    assert [r["seq"] for r in lines[:12]] == list(range(1, 13))
    prev = GENESIS_HASH
    for record in lines[:12]:
        assert record["prev_hash"] == prev and event_hash(prev, record) == record["hash"]
        assert record["occurred_at"].endswith("Z") and len(record["occurred_at"]) == 27
        prev = record["hash"]
    assert lines[1]["actor_user_id"] == 7 and lines[1]["request_id"] == "req-0001"
    checkpoint = lines[12]
    assert (checkpoint["id"], checkpoint["seq"], checkpoint["hash"]) == (1, 8, lines[7]["hash"])
    assert checkpoint["note"] == "monthly report, November" and checkpoint["created_by_label"] == STAFF.label


# --- tampering ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("tamper", "first_bad", "kind", "says"), TAMPERING,
                         ids=[t[0].__name__ for t in TAMPERING])
def test_tampering_is_named_at_its_first_bad_seq(chain, engine, tmp_path, tamper, first_bad, kind, says):  # type: ignore[no-untyped-def]
    with tampering(engine) as conn:
        tamper(conn)
    result = verify_db(chain)
    assert not result.ok
    assert (result.first_bad_seq, result.problem.kind) == (first_bad, kind), result.summary()
    assert says in result.problem.message
    assert result.summary().startswith(f"FAILED at seq {first_bad} ({kind.value}): ")
    # What was verified is the chain before the first bad seq.
    assert (result.count, result.head_seq) == (first_bad - 1, first_bad - 1)
    assert result.head_hash == (head_hash(chain, first_bad - 1) if first_bad > 1 else GENESIS_HASH)
    # An export of the tampered database fails the standalone verifier in exactly the same words.
    assert_script_agrees(result, run_script(export(chain, tmp_path / "tampered.jsonl")))


def test_truncation_with_the_checkpoints_deleted_is_caught_by_a_published_checkpoint(chain, engine, tmp_path):  # type: ignore[no-untyped-def]
    published = Checkpoint(8, head_hash(chain, 8))
    with tampering(engine) as conn:
        conn.execute(delete(EVENTS).where(EVENTS.c.seq >= 6))
        conn.execute(delete(AuditCheckpoint.__table__))
    assert verify_db(chain).ok  # nothing left in the database says what was there
    result = verify_db(chain, [published])
    assert (result.first_bad_seq, result.problem.kind) == (6, Failure.TRUNCATED)
    assert "published checkpoint is at seq 8" in result.problem.message
    done = run_script(export(chain, tmp_path / "t.jsonl"), f"--checkpoint=8:{published.hash}")
    assert_script_agrees(result, done)


def test_a_published_checkpoint_that_matches_passes(chain, tmp_path):  # type: ignore[no-untyped-def]
    published = Checkpoint(10, head_hash(chain, 10))
    result = verify_db(chain, [published])
    assert result.ok and result.checkpoints == 2
    assert_script_agrees(result, run_script(export(chain, tmp_path / "a.jsonl"), f"--checkpoint=10:{published.hash}"))
    wrong = run_script(tmp_path / "a.jsonl", f"--checkpoint=10:{'e' * 64}")
    assert wrong.returncode == 1 and "FAILED at seq 10 (checkpoint_mismatch)" in wrong.stderr


def test_a_tampered_export_file_fails_the_script(chain, tmp_path):  # type: ignore[no-untyped-def]
    path = export(chain, tmp_path / "a.jsonl")
    lines = path.read_text("utf-8").splitlines()
    record = json.loads(lines[2])
    record["summary"] = record["summary"].replace("事象", "事件")
    edited = tmp_path / "edited.jsonl"
    edited.write_text("\n".join([*lines[:2], json.dumps(record, ensure_ascii=False), *lines[3:]]) + "\n", "utf-8")
    assert "FAILED at seq 3 (edited)" in run_script(edited).stderr
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text("\n".join([lines[0], lines[2], lines[1], *lines[3:]]) + "\n", "utf-8")
    assert "FAILED at seq 2 (deleted)" in run_script(shuffled).stderr
    repeated = tmp_path / "repeated.jsonl"
    repeated.write_text("\n".join([lines[0], lines[1], lines[1], *lines[2:]]) + "\n", "utf-8")
    assert "FAILED at seq 3 (reordered): event 2 appears again" in run_script(repeated).stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text(lines[0] + "\n{not json\n", "utf-8")
    done = run_script(broken)
    assert done.returncode == 1 and done.stderr.strip() == "FAILED: line 2 is not JSON"


# --- checkpoints --------------------------------------------------------------------------------


def test_a_checkpoint_is_the_head_and_its_event_follows_it(engine):  # type: ignore[no-untyped-def]
    factory = make_session_factory(engine)
    add_events(factory, 3)
    with factory() as session:
        checkpoint = audit_trail.record_checkpoint(session, STAFF, "  sent to the regulator  ")
    assert (checkpoint.seq, checkpoint.hash) == (3, head_hash(factory, 3))
    assert checkpoint.note == "sent to the regulator" and checkpoint.created_by_label == STAFF.label
    with factory() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.seq == 4))
        assert event.action == "audit.checkpoint_recorded" and event.prev_hash == checkpoint.hash
        assert json.loads(event.details) == {"seq": 3, "hash": checkpoint.hash, "note": "sent to the regulator"}
        assert [c.id for c in audit_trail.list_checkpoints(session, REGULATOR)] == [checkpoint.id]
        assert audit_trail.verify(session, REGULATOR).checkpoints == 1
        second = audit_trail.record_checkpoint(session, STAFF, "next month")
    assert second.seq == 4


def test_checkpoints_are_refused_for_an_empty_or_damaged_chain(engine):  # type: ignore[no-untyped-def]
    factory = make_session_factory(engine)
    with factory() as session, pytest.raises(ValidationError, match="empty"):
        audit_trail.record_checkpoint(session, STAFF, "nothing yet")
    add_events(factory, 5)
    with tampering(engine) as conn:
        edit(conn)
    with factory() as session:
        with pytest.raises(ValidationError, match=r"FAILED at seq 4 \(edited\).*no checkpoint was recorded"):
            audit_trail.record_checkpoint(session, STAFF, "would vouch for a forgery")
        assert session.scalar(select(AuditCheckpoint)) is None
        assert session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)) == 5


def test_checkpoints_verify_only_what_came_since_the_last_one(chain, engine):  # type: ignore[no-untyped-def]
    with tampering(engine) as conn:  # damage covered by checkpoint #1 (seq 8) ...
        conn.execute(update(EVENTS).where(EVENTS.c.seq == 2).values(summary="forged"))
    with chain() as session:  # ... is not re-read by the next checkpoint, but verify finds it
        assert audit_trail.record_checkpoint(session, STAFF, "december").seq == 12
        assert audit_trail.verify(session, REGULATOR).first_bad_seq == 2
    with tampering(engine) as conn:  # damage after the last checkpoint refuses the next one
        conn.execute(update(EVENTS).where(EVENTS.c.seq == 13).values(summary="forged"))
    with chain() as session, pytest.raises(ValidationError, match=r"FAILED at seq 13 \(edited\)"):
        audit_trail.record_checkpoint(session, STAFF, "january")


def test_roles(chain):  # type: ignore[no-untyped-def]
    with chain() as session:
        with pytest.raises(PermissionDenied):
            audit_trail.record_checkpoint(session, REGULATOR, "regulators read only")
        with pytest.raises(ValidationError, match="note"):
            audit_trail.record_checkpoint(session, STAFF, "   ")
        for action in (audit_trail.verify, audit_trail.list_checkpoints, audit_trail.export_records):
            with pytest.raises(PermissionDenied):
                action(session, CUSTOMER)
        assert audit_trail.verify(session, REGULATOR).ok
        assert len(audit_trail.list_checkpoints(session, REGULATOR)) == 1


# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.mark.postgres
def test_checkpoints_are_append_only_on_postgresql(pg_engine):  # type: ignore[no-untyped-def]
    factory = make_session_factory(pg_engine)
    add_events(factory, 2)
    with factory() as session:
        audit_trail.record_checkpoint(session, STAFF, "published")
    for statement in ("UPDATE audit_checkpoints SET note = 'x'", "DELETE FROM audit_checkpoints",
                      "TRUNCATE audit_checkpoints"):
        with pg_engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text(statement))


@pytest.mark.postgres
def test_a_checkpoint_waits_for_a_writer_holding_the_chain(pg_engine):  # type: ignore[no-untyped-def]
    factory = make_session_factory(pg_engine)
    add_events(factory, 3)
    writer = factory()
    record_event(writer, SYSTEM_ACTOR, "test.slow", "thing", 1, "holds the chain's lock")  # seq 4
    recorded = {}

    def checkpoint() -> None:
        with factory() as session:
            recorded["checkpoint"] = audit_trail.record_checkpoint(session, STAFF, "during a write")

    thread = threading.Thread(target=checkpoint)
    thread.start()
    waiting = 0
    with pg_engine.connect() as conn:
        for _ in range(400):
            waiting = conn.scalar(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"))
            if waiting:
                break
            time.sleep(0.025)
    writer.commit()
    writer.close()
    thread.join(30)
    assert waiting == 1
    checkpoint = recorded["checkpoint"]
    assert (checkpoint.seq, checkpoint.hash) == (4, head_hash(factory, 4))
    with factory() as session:
        assert session.scalar(select(AuditEvent.action).where(AuditEvent.seq == 5)) == "audit.checkpoint_recorded"
        assert verify_chain(session).ok


# --- the command line ---------------------------------------------------------------------------


@pytest.fixture
def payouts(db_url, tmp_path):  # type: ignore[no-untyped-def]
    env = {**os.environ, "PAYOUTS_DATABASE_URL": db_url, "PAYOUTS_INSTANCE_DIR": str(tmp_path),
           "PYTHONIOENCODING": "utf-8"}
    env.pop("PAYOUTS_REDIS_URL", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=120,
                              check=False)

    return run


def test_audit_commands(payouts, engine, tmp_path):  # type: ignore[no-untyped-def]
    factory = make_session_factory(engine)
    add_events(factory, 4)
    refused = payouts("audit", "checkpoint")
    assert refused.returncode == 2 and "--note" in refused.stderr
    made = payouts("audit", "checkpoint", "--note", "quarterly report")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == f"checkpoint #1: seq 4 hash {head_hash(factory, 4)}"

    verified = payouts("audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("OK: 5 events, head seq 5 hash ") and "1 checkpoint(s) match" in verified.stdout
    published = payouts("audit", "verify", "--checkpoint", f"4:{head_hash(factory, 4)}")
    assert published.returncode == 0 and "2 checkpoint(s) match" in published.stdout
    assert payouts("audit", "verify", "--checkpoint", "4:nothex").returncode == 2

    target = tmp_path / "audit.jsonl"
    exported = payouts("audit", "export", str(target))
    assert exported.returncode == 0, exported.stderr
    assert "exported 5 events and 1 checkpoints" in exported.stderr
    to_stdout = payouts("audit", "export", "-")
    assert to_stdout.returncode == 0 and to_stdout.stdout == target.read_text("utf-8")
    assert [json.loads(line)["type"] for line in to_stdout.stdout.splitlines()] == ["event"] * 5 + ["checkpoint"]
    script = run_script(target)
    assert script.returncode == 0 and script.stdout == verified.stdout

    with tampering(engine) as conn:
        conn.execute(update(EVENTS).where(EVENTS.c.seq == 2).values(actor="someone else"))
    failed = payouts("audit", "verify")
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.startswith("FAILED at seq 2 (edited): event 2 does not match its hash")
    assert payouts("audit", "export", str(target)).returncode == 0
    assert run_script(target).stderr == failed.stderr
