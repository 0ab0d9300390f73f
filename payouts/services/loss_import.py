"""Importing a loss file into an incident: streamed, validated, all-or-nothing, idempotent.

The file is hashed first: the same bytes imported into the same incident again are recognised
and change nothing. Rows are then validated as they stream into a staging table; any problem in
any row rejects the whole file with a report naming lines, and the transaction is rolled back
so nothing is written. A clean file is merged into customers and loss positions with set-based
SQL and recorded as a LossImport with an audit event, in the same transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from payouts.audit.log import record_event
from payouts.db import loss_staging
from payouts.db.models import Asset, LossImport
from payouts.db.session import transaction
from payouts.db.types import utcnow
from payouts.domain.loss_file import (
    LossFileError,
    LossFileReader,
    LossRow,
    RowProblem,
    decode_lines,
    parse_header_line,
)
from payouts.domain.plain_rows import PlainRowsCheck
from payouts.domain.roles import STAFF_WRITERS, Actor
from payouts.services.access import require_role
from payouts.services.incidents import ensure_claims_not_open, ensure_not_allocated, find_incident

#: How many problems a rejection report lists; the rest are counted.
MAX_REPORTED_PROBLEMS = 100
_HASH_CHUNK = 1 << 20


@dataclass
class ImportReport:
    """What happened to one file: accepted, a repeat of an earlier import, or rejected."""

    status: str  # "imported", "already_imported" or "rejected"
    filename: str
    rows: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    loss_import: LossImport | None = None

    @property
    def ok(self) -> bool:
        return self.status != "rejected"


class ImportRejected(Exception):
    """Raised inside the transaction to roll it back; carries the report."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(f"{report.filename}: rejected with {report.problem_count} problem(s)")
        self.report = report


def import_losses(
    session: Session, actor: Actor, incident_ref: str, stream: BinaryIO, filename: str
) -> ImportReport:
    """Import ``stream`` (a seekable binary file) as losses of incident ``incident_ref``."""
    require_role(actor, STAFF_WRITERS, "import losses")
    filename = (filename or "upload.csv")[-255:]
    digest, size = _sha256(stream)
    try:
        with transaction(session):
            return _import(session, actor, incident_ref, stream, filename, digest, size)
    except ImportRejected as rejected:
        return rejected.report
    finally:
        # SQLite keeps temporary tables per connection; PostgreSQL dropped it on commit.
        loss_staging.drop(session)
        session.commit()


def _import(
    session: Session,
    actor: Actor,
    incident_ref: str,
    stream: BinaryIO,
    filename: str,
    digest: str,
    size: int,
) -> ImportReport:
    # Locking the incident serialises imports into it (a no-op on SQLite, which has one writer).
    incident = find_incident(session, incident_ref, lock=True)
    earlier = session.scalar(
        select(LossImport).where(LossImport.incident_id == incident.id, LossImport.sha256 == digest)
    )
    if earlier is not None:
        return ImportReport("already_imported", filename, rows=earlier.row_count, loss_import=earlier)
    ensure_not_allocated(session, incident, "losses")
    ensure_claims_not_open(incident, "losses")

    report = ImportReport("rejected", filename)
    try:
        if loss_staging.supports_raw_copy(session):
            _stage_in_database(session, stream, report)
        else:
            _stage_through_python(session, stream, report)
    except LossFileError as exc:
        report.problem_count += 1
        report.problems.append(exc.message)
        raise ImportRejected(report) from None
    if report.problem_count == 0 and report.rows == 0:
        report.problem_count = 1
        report.problems.append("the file has a header but no data rows")
    if report.problem_count == 0:
        # Checks that need the whole file, on the staged rows.
        loss_staging.stage_customers(session)
        conflicts = loss_staging.whole_file_conflicts(session, MAX_REPORTED_PROBLEMS)
        report.problem_count = len(conflicts)
        report.problems = [f"line {c.line}: {c.message}" for c in conflicts]
    if report.problem_count:
        raise ImportRejected(report)

    loss_staging.take_merge_turn(session)
    now = utcnow()
    record = LossImport(
        incident_id=incident.id,
        filename=filename,
        sha256=digest,
        byte_size=size,
        row_count=report.rows,
        customers_created=0,
        customers_updated=0,
        positions_created=0,
        positions_updated=0,
        positions_unchanged=0,
        imported_by_id=actor.user_id,
        imported_by_label=actor.label,
        created_at=now,
    )
    session.add(record)
    session.flush()
    counts = loss_staging.merge(session, incident.id, record.id, now)
    record.customers_created = counts.customers_created
    record.customers_updated = counts.customers_updated
    record.positions_created = counts.positions_created
    record.positions_updated = counts.positions_updated
    record.positions_unchanged = report.rows - counts.positions_created - counts.positions_updated
    record_event(
        session,
        actor,
        "losses.imported",
        "incident",
        incident.ref,
        f"Loss file {filename} imported into {incident.ref}: {report.rows} rows",
        {
            "import_id": record.id,
            "filename": filename,
            "sha256": digest,
            "rows": report.rows,
            "customers_created": counts.customers_created,
            "customers_updated": counts.customers_updated,
            "positions_created": counts.positions_created,
            "positions_updated": counts.positions_updated,
        },
    )
    report.status = "imported"
    report.loss_import = record
    return report


def _stage_through_python(session: Session, stream: BinaryIO, report: ImportReport) -> None:
    """Read and check rows in Python, streaming the good ones into the staging table."""
    reader = LossFileReader(decode_lines(stream), _asset_decimals(session))
    loss_staging.create(session)
    loss_staging.load(session, _valid_rows(reader, report))
    report.rows = reader.rows_read


def _stage_in_database(session: Session, stream: BinaryIO, report: ImportReport) -> None:
    """COPY the file as is and check its rows in SQL: the fast path on PostgreSQL.

    While the bytes stream to COPY, PlainRowsCheck looks at them too (on this process's core,
    while the database parses on its own). A file whose rows are all plain is typed in SQL
    without checking each row again; any other file has every row checked there.
    """
    columns = parse_header_line(stream.readline())
    ordered = sorted(columns, key=columns.__getitem__)
    plain = PlainRowsCheck(columns, _asset_decimals(session))
    loss_staging.copy_raw(session, ordered, plain.watch(iter(lambda: stream.read(_HASH_CHUNK), b"")))
    report.problem_count, report.problems, report.rows = loss_staging.check_and_stage(
        session, MAX_REPORTED_PROBLEMS, rows_are_plain=plain.all_plain
    )


def _asset_decimals(session: Session) -> dict[str, int]:
    return {code: places for code, places in session.execute(select(Asset.code, Asset.decimals))}


def _valid_rows(reader: LossFileReader, report: ImportReport) -> Iterator[LossRow]:
    """Yield good rows while any are clean; after the first problem keep reading to count them."""
    for item in reader:
        if isinstance(item, RowProblem):
            report.problem_count += 1
            if len(report.problems) < MAX_REPORTED_PROBLEMS:
                report.problems.append(str(item))
        elif report.problem_count == 0:
            yield item


def _sha256(stream: BinaryIO) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    stream.seek(0)
    while chunk := stream.read(_HASH_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return digest.hexdigest(), size
