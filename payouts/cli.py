"""The `payouts` console script: a Flask CLI group over the app factory.

Staff actions are available here as on the pages (incidents, prices, loss imports), plus
operations (migrations, demo data, users) and the database-free allocation scenario runner.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import sys
from contextlib import contextmanager
from collections.abc import Iterator

import click
from flask import current_app
from flask.cli import FlaskGroup
from sqlalchemy.orm import Session

from payouts.domain.claims import ClaimStatus, FourEyesPolicy
from payouts.domain.errors import DomainError, ValidationError
from payouts.domain.roles import Actor, Role


def _create_app():  # type: ignore[no-untyped-def]
    from payouts.web.app import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=True, load_dotenv=False)
def cli() -> None:
    """Claims and compensation payouts."""


def main() -> None:
    cli(prog_name="payouts")


def _operator() -> Actor:
    """Whoever runs the CLI on the server acts as an admin, named in the audit trail."""
    return Actor(label=f"cli:{getpass.getuser()}", role=Role.ADMIN)


@contextmanager
def _session() -> Iterator[Session]:
    session = current_app.extensions["payouts"].session_factory()
    try:
        yield session
    finally:
        session.close()


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


def _act(action, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Run a service action as the operator in a fresh session; a refusal exits 2 with its reason."""
    with _session() as session:
        try:
            return action(session, _operator(), *args, **kwargs)
        except DomainError as exc:
            _fail(exc)


def _parse_time(value: str, name: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint=name) from None
    if parsed.tzinfo is None:
        raise click.BadParameter("give a time zone, e.g. 2026-10-01T12:00+09:00", param_hint=name)
    return parsed


# --- database -------------------------------------------------------------------------------
@cli.group("db")
def db_group() -> None:
    """Schema migrations (Alembic)."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to the configured database."""
    from payouts.db.migrate import upgrade

    upgrade(current_app.extensions["payouts"].engine)
    click.echo("database is at the latest migration")


# --- incidents and prices -------------------------------------------------------------------
@cli.group("incidents")
def incidents_group() -> None:
    """Record and list incidents."""


@incidents_group.command("create")
@click.option("--ref", required=True, help="Short unique reference, e.g. 2026-HACK-01.")
@click.option("--title", required=True)
@click.option(
    "--type",
    "incident_type",
    required=True,
    type=click.Choice(["hack", "operational_failure", "insider_fraud", "other"]),
)
@click.option("--occurred", required=True, help="ISO 8601 with zone, e.g. 2026-10-01T12:00+09:00")
@click.option("--discovered", required=True, help="ISO 8601 with zone")
@click.option("--description", default="")
def incidents_create(
    ref: str, title: str, incident_type: str, occurred: str, discovered: str, description: str
) -> None:
    """Record an incident."""
    from payouts.services import incidents

    incident = _act(
        incidents.record_incident,
        ref=ref,
        title=title,
        incident_type=incident_type,
        occurred_at=_parse_time(occurred, "--occurred"),
        discovered_at=_parse_time(discovered, "--discovered"),
        description=description,
    )
    click.echo(f"recorded incident {incident.ref}")


@incidents_group.command("list")
def incidents_list() -> None:
    """List incidents with their affected customers."""
    from payouts.services import incidents

    with _session() as session:
        for s in incidents.list_incidents(session, _operator()):
            i = s.incident
            click.echo(
                f"{i.ref}\t{i.incident_type}\t{i.occurred_at.isoformat()}\t"
                f"{s.customers} customers\t{s.imports} imports\t{i.title}"
            )


@cli.group("prices")
def prices_group() -> None:
    """Reference prices of an incident."""


@prices_group.command("set")
@click.argument("incident")
@click.argument("asset")
@click.argument("price")
@click.option("--source", required=True, help="How the price was fixed.")
def prices_set(incident: str, asset: str, price: str, source: str) -> None:
    """Fix the yen PRICE per whole unit of ASSET for INCIDENT."""
    from payouts.services import incidents

    _act(incidents.set_reference_price, incident_ref=incident, asset_code=asset, price=price, source=source)
    click.echo(f"{incident}: {asset} = ¥{price} ({source})")


# --- losses ---------------------------------------------------------------------------------
@cli.group("losses")
def losses_group() -> None:
    """Loss files from the exchange's ledger."""


@losses_group.command("import")
@click.argument("incident")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def losses_import(incident: str, file: str) -> None:
    """Import FILE (CSV) into INCIDENT: all rows or none."""
    from pathlib import Path

    from payouts.services import loss_import

    with open(file, "rb") as stream:
        report = _act(loss_import.import_losses, incident, stream, Path(file).name)
    if report.status == "rejected":
        click.echo(f"rejected: {report.problem_count} problem(s); nothing was imported", err=True)
        for problem in report.problems:
            click.echo(f"  {problem}", err=True)
        if report.problem_count > len(report.problems):
            click.echo(f"  ...and {report.problem_count - len(report.problems)} more", err=True)
        sys.exit(1)
    record = report.loss_import
    assert record is not None
    if report.status == "already_imported":
        click.echo(f"already imported as import #{record.id}; nothing changed")
        return
    click.echo(
        f"import #{record.id}: {record.row_count} rows; customers {record.customers_created} created,"
        f" {record.customers_updated} updated; positions {record.positions_created} created,"
        f" {record.positions_updated} updated, {record.positions_unchanged} unchanged"
    )


# --- funding: reserve, insurance, terms ---------------------------------------------------------
@cli.group("reserve")
def reserve_group() -> None:
    """The liability reserve's ledger."""


def _reserve_move(kind: str, amount: int, memo: str) -> None:
    from payouts.services import funding

    _act(funding.record_reserve_movement, kind=kind, amount_jpy=amount, memo=memo)
    with _session() as session:
        balance = funding.reserve_balance(session)
    click.echo(f"{kind} of ¥{amount:,} recorded; available ¥{balance.available:,}")


@reserve_group.command("deposit")
@click.argument("amount", type=click.IntRange(min=1))
@click.option("--memo", required=True)
def reserve_deposit(amount: int, memo: str) -> None:
    """Record AMOUNT yen paid into the reserve."""
    _reserve_move("deposit", amount, memo)


@reserve_group.command("withdraw")
@click.argument("amount", type=click.IntRange(min=1))
@click.option("--memo", required=True)
def reserve_withdraw(amount: int, memo: str) -> None:
    """Record AMOUNT yen taken out of the available reserve."""
    _reserve_move("withdrawal", amount, memo)


@reserve_group.command("balance")
def reserve_show() -> None:
    """Show the reserve's balances (derived from its ledger)."""
    from payouts.services import funding

    with _session() as session:
        b = funding.reserve_balance(session)
    click.echo(
        f"cash ¥{b.cash:,}\nearmarked ¥{b.earmarked:,}\navailable ¥{b.available:,}\npaid ¥{b.payments:,}"
    )


@cli.group("insurance")
def insurance_group() -> None:
    """Insurance policies and the layers of the tower."""


@insurance_group.command("add-policy")
@click.argument("policy_number")
@click.option("--insurer", required=True)
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), required=True)
def insurance_add_policy(policy_number: str, insurer: str, start: dt.datetime, end: dt.datetime) -> None:
    """Record an insurance policy."""
    from payouts.services import funding

    _act(
        funding.create_policy,
        policy_number=policy_number,
        insurer=insurer,
        period_start=start.date(),
        period_end=end.date(),
    )
    click.echo(f"recorded policy {policy_number}")


@insurance_group.command("add-layer")
@click.argument("policy_number")
@click.argument("code")
@click.option("--attachment", type=click.IntRange(min=0), required=True)
@click.option("--limit", "limit_jpy", type=click.IntRange(min=0), required=True)
@click.option("--share", default="1", show_default=True)
@click.option("--aggregate", type=click.IntRange(min=0), default=None)
@click.option("--exclude", multiple=True, help="An incident type the layer does not cover (repeatable).")
def insurance_add_layer(
    policy_number: str,
    code: str,
    attachment: int,
    limit_jpy: int,
    share: str,
    aggregate: int | None,
    exclude: tuple[str, ...],
) -> None:
    """Add layer CODE to POLICY_NUMBER."""
    from payouts.services import funding

    _act(
        funding.add_layer,
        policy_number=policy_number,
        code=code,
        attachment_jpy=attachment,
        limit_jpy=limit_jpy,
        share=share,
        aggregate_limit_jpy=aggregate,
        excluded_incident_types=list(exclude),
    )
    click.echo(f"added layer {code}: ¥{limit_jpy:,} xs ¥{attachment:,} at {share}")


@cli.group("terms")
def terms_group() -> None:
    """Per-incident compensation terms."""


@terms_group.command("set")
@click.argument("incident")
@click.option("--deductible", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--cap", type=click.IntRange(min=0), default=None)
@click.option("--tranches", default="", help="Comma-separated yen thresholds, e.g. 200000,1000000")
def terms_set(incident: str, deductible: int, cap: int | None, tranches: str) -> None:
    """Set deductible, cap and priority tranches of INCIDENT."""
    from payouts.services import funding

    _act(
        funding.set_terms,
        incident_ref=incident,
        deductible_jpy=deductible,
        cap_jpy=cap,
        tranches_jpy=tranches,
    )
    click.echo(f"terms of {incident} set")


# --- allocation -------------------------------------------------------------------------------
@cli.group("allocation")
def allocation_group() -> None:
    """Preview and commit allocations; share later money."""


@allocation_group.command("preview")
@click.argument("incident")
def allocation_preview(incident: str) -> None:
    """Compute INCIDENT's allocation without storing it."""
    from payouts.services import allocation

    p = _act(allocation.preview, incident)
    r = p.result
    click.echo(
        f"customers {len(r.customers):,}; eligible ¥{r.total_eligible_jpy:,};"
        f" funded ¥{r.total_funded_jpy:,}; shortfall ¥{r.shortfall_jpy:,}"
    )
    for s in r.sources:
        click.echo(f"  {s.id:<12} available ¥{s.available_jpy:,}  used ¥{s.used_jpy:,}")
    click.echo(f"inputs {p.digest}")


@allocation_group.command("commit")
@click.argument("incident")
@click.option(
    "--digest", default=None, help="Refuse unless the inputs still have this digest (from preview)."
)
def allocation_commit(incident: str, digest: str | None) -> None:
    """Commit INCIDENT's allocation run."""
    from payouts.services import allocation

    state = current_app.extensions["payouts"]
    run = _act(allocation.commit_allocation, incident, expected_digest=digest, dispatch=state.dispatch,
               batch_size=state.config.disbursement_batch_size)
    click.echo(f"run #{run.id}: funded ¥{run.total_funded_jpy:,}, shortfall ¥{run.shortfall_jpy:,}")


@allocation_group.command("recover")
@click.argument("incident")
@click.argument("amount", type=click.IntRange(min=1))
@click.option("--source", required=True, help="Where the money came from.")
def allocation_recover(incident: str, amount: int, source: str) -> None:
    """Share AMOUNT yen that arrived later over INCIDENT's unpaid balances."""
    from payouts.services import allocation

    state = current_app.extensions["payouts"]
    run = _act(allocation.record_recovery, incident_ref=incident, amount_jpy=amount, source=source,
               dispatch=state.dispatch, batch_size=state.config.disbursement_batch_size)
    click.echo(f"run #{run.id}: shared ¥{run.total_funded_jpy:,} over {run.customers:,} customers")


# --- claims and customers -------------------------------------------------------------------
@cli.group("claims")
def claims_group() -> None:
    """Open an incident's claims to customers, list them, approve the ones that match the ledger."""


def _policy() -> FourEyesPolicy:
    return FourEyesPolicy(current_app.extensions["payouts"].config.four_eyes_threshold_jpy)


def _reviewer(session: Session, username: str | None) -> Actor:
    """The named staff or approver login the CLI acts as (approvals belong to a person)."""
    from sqlalchemy import select

    from payouts.db.models import User

    if not username:
        _fail(ValidationError("--as", "approving claims is a decision by a named person: give --as USERNAME"
                                      " (a staff or approver login)"))
    user = session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None or not user.active:
        _fail(ValidationError("--as", f"no active login {username!r}"))
    if user.role not in (Role.STAFF.value, Role.APPROVER.value):
        _fail(ValidationError("--as", f"{user.username} is {user.role}; only staff or approver logins"
                                      " approve claims"))
    # The audit trail names the person; the request id says it came from the CLI, run by whom.
    return Actor(label=user.username, role=Role(user.role), user_id=user.id,
                 request_id=f"cli-{getpass.getuser()}"[:64])


@claims_group.command("open")
@click.argument("incident")
def claims_open(incident: str) -> None:
    """Open INCIDENT's claims: one per affected customer; prices and imports freeze."""
    from payouts.services import claims

    count = _act(claims.open_claims, incident)
    click.echo(f"opened {count} claims for {incident}")


@claims_group.command("list")
@click.argument("incident")
@click.option("--status", type=click.Choice([s.value for s in ClaimStatus]), default=None,
              help="Only claims in this state.")
def claims_list(incident: str, status: str | None) -> None:
    """List INCIDENT's claims: id, customer, status, version, total yen, name."""
    from payouts.services import claim_queue, incidents

    operator = _operator()
    with _session() as session:
        try:
            incidents.get_incident(session, operator, incident)
            after, shown = None, 0
            while True:
                page = claim_queue.review_queue(session, operator, _policy(), which=claim_queue.QueueFilter.ALL,
                                                incident_ref=incident, status=status, after=after, limit=1000)
                for row in page.rows:
                    c = row.claim
                    click.echo(f"{c.id}\t{row.customer_ref}\t{c.status}\tv{c.version}\t{c.total_jpy}"
                               f"\t{row.customer_name}")
                    shown += 1
                if page.next_cursor is None:
                    break
                after = page.next_cursor
        except DomainError as exc:
            _fail(exc)
    click.echo(f"{shown} claims", err=True)


@claims_group.command("bulk-approve")
@click.argument("incident")
@click.option("--limit", type=click.IntRange(min=1, max=50_000), default=50_000, show_default=True,
              help="Approve at most this many in one transaction.")
@click.option("--as", "username", default=None, metavar="USERNAME",
              help="The staff or approver login whose approval this is (required).")
def claims_bulk_approve(incident: str, limit: int, username: str | None) -> None:
    """Approve INCIDENT's accepted, never adjusted, never disputed claims at or below the
    four-eyes threshold, as USERNAME. Claims above it stay for two people."""
    from payouts.services import claims

    with _session() as session:
        reviewer = _reviewer(session, username)
        try:
            count = claims.bulk_approve(session, reviewer, incident, _policy(), limit=limit)
        except DomainError as exc:
            _fail(exc)
    click.echo(f"approved {count} claims of {incident} as {reviewer.label}")


@cli.group("customers")
def customers_group() -> None:
    """Customer logins."""


@customers_group.command("activation-code")
@click.argument("customer_ref")
def customers_activation_code(customer_ref: str) -> None:
    """Issue a one-time activation code for CUSTOMER_REF's login and print it (deliver it out of
    band: the exchange's app or a letter). Earlier unused codes stop working."""
    from payouts.services import activation

    code = _act(activation.issue_activation_code, customer_ref)
    click.echo(code)


# --- disbursements ---------------------------------------------------------------------------
@cli.group("disbursements")
def disbursements_group() -> None:
    """Payments: sweep what is due, follow progress, reconcile, retry."""


@disbursements_group.command("sweep")
@click.option("--every", type=click.IntRange(min=1), default=None,
              help="Keep sweeping every N seconds (a long-running sweeper) instead of once.")
@click.option("--stale-after", type=click.IntRange(min=0), default=120, show_default=True,
              help="Seconds after which an enqueued batch or an unfinished payment is enqueued again.")
def disbursements_sweep(every: int | None, stale_after: int) -> None:
    """Re-enqueue the payments the database says are due (lost jobs, flushed Redis, retries)."""
    import time

    from payouts.services import disbursements

    state = current_app.extensions["payouts"]
    while True:
        report = _act(disbursements.sweep, state.dispatch, batch_size=state.config.disbursement_batch_size,
                      stale_after=dt.timedelta(seconds=stale_after))
        click.echo(f"{utc_stamp()} planned {len(report.planned)} new batches, enqueued {report.dispatched}")
        if every is None:
            return
        time.sleep(every)


def utc_stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@disbursements_group.command("status")
@click.argument("incident")
def disbursements_status(incident: str) -> None:
    """Payments of INCIDENT by state, throughput, and those needing attention."""
    from payouts.services import disbursements

    progress = _act(disbursements.progress, incident)
    for total in progress.by_status:
        click.echo(f"{total.status:<16} {total.count:>10,}  ¥{total.amount_jpy:,}")
    click.echo(f"paid in the last minute: {progress.paid_last_minute:,}; last hour: {progress.paid_last_hour:,}")
    for payment, ref in progress.needs_attention:
        click.echo(f"needs attention: #{payment.id} {ref} ¥{payment.amount_jpy:,} {payment.failure_reason}")


@disbursements_group.command("reconcile")
@click.argument("incident")
def disbursements_reconcile(incident: str) -> None:
    """Instructions against allocations by source, and by outcome, to the yen; exit 1 on any difference."""
    from payouts.services import disbursements

    rec = _act(disbursements.reconcile, incident)
    click.echo(f"{'source':<12} {'allocated':>18} {'awaiting funds':>18} {'instructed':>18} {'difference':>14}")
    for line in rec.sources:
        click.echo(f"{line.source_id:<12} {line.allocated_jpy:>18,} {line.awaiting_funds_jpy:>18,}"
                   f" {line.instructed_jpy:>18,} {line.difference_jpy:>14,}")
    click.echo(f"instructed ¥{rec.instructed_jpy:,} = paid ¥{rec.paid_jpy:,} + pending ¥{rec.pending_jpy:,}"
               f" + failed ¥{rec.failed_jpy:,} + cancelled ¥{rec.cancelled_jpy:,}"
               f" (difference ¥{rec.status_difference_jpy:,})")
    if not rec.balanced:
        click.echo("DIFFERENCE FOUND", err=True)
        sys.exit(1)
    click.echo("reconciled to the yen")


@disbursements_group.command("retry")
@click.argument("disbursement_id", type=int)
def disbursements_retry(disbursement_id: int) -> None:
    """Send a payment that needs attention again, to the customer's approved account."""
    from payouts.services import disbursements

    state = current_app.extensions["payouts"]
    row = _act(disbursements.retry_payment, disbursement_id, batch_size=state.config.disbursement_batch_size,
               dispatch=state.dispatch)
    click.echo(f"payment #{row.id} is {row.status}")


@cli.group("insurers")
def insurers_group() -> None:
    """Insurers' payments on committed allocations."""


@insurers_group.command("pay")
@click.argument("incident")
@click.argument("layer")
@click.argument("amount", type=click.IntRange(min=1))
def insurers_pay(incident: str, layer: str, amount: int) -> None:
    """Record AMOUNT yen received from LAYER for INCIDENT; once the layer's share is in full, its
    part of every payout is instructed."""
    from payouts.services import disbursements

    state = current_app.extensions["payouts"]
    receivable = _act(disbursements.record_insurer_payment, incident_ref=incident, layer_code=layer,
                      amount_jpy=amount, batch_size=state.config.disbursement_batch_size, dispatch=state.dispatch)
    click.echo(f"layer {layer}: received ¥{receivable.received_jpy:,} of ¥{receivable.amount_jpy:,}")


# --- users and demo -------------------------------------------------------------------------
@cli.group("users")
def users_group() -> None:
    """Logins."""


@users_group.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--name", "display_name", default="")
@click.option("--customer-ref", default=None, help="For customers: the exchange's reference.")
@click.password_option(required=False, help="Omit for a customer who will activate later.")
def users_create(
    username: str, role: str, display_name: str, customer_ref: str | None, password: str | None
) -> None:
    """Create a login."""
    from payouts.services import users

    _act(
        users.create_user,
        username=username,
        display_name=display_name,
        role=Role(role),
        password=password or None,
        customer_ref=customer_ref,
    )
    click.echo(f"created {role} {username}")


@cli.group("demo")
def demo_group() -> None:
    """Demo data for trying the product locally."""


@demo_group.command("load")
@click.option("--customers", default=3000, show_default=True)
def demo_load(customers: int) -> None:
    """Load the demo incident (idempotent) and print a login for each role."""
    from payouts.services.demo import load_demo

    if current_app.extensions["payouts"].config.is_production:
        _fail(RuntimeError("demo data is never loaded in production"))
    with _session() as session:
        logins = load_demo(session, customers)
    click.echo("Demo logins (passwords are new on every load):")
    for login in logins:
        click.echo(f"  {login.role:<10} {login.username:<26} {login.password}")


# --- workers --------------------------------------------------------------------------------
@cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
def worker(burst: bool) -> None:
    """Run an RQ worker for the payouts queues (needs PAYOUTS_REDIS_URL)."""
    from payouts.jobs.runtime import run_worker

    try:
        run_worker(current_app.extensions["payouts"].config, burst=burst)
    except RuntimeError as exc:
        _fail(exc)


# --- audit trail ----------------------------------------------------------------------------
@cli.group("audit")
def audit_group() -> None:
    """Verify, checkpoint and export the hash-chained audit trail (docs/audit-chain.md)."""


def _published_checkpoints(_ctx, _param, values):  # type: ignore[no-untyped-def]
    from payouts.audit.verify import Checkpoint

    checkpoints = []
    for value in values:
        seq, _, hash_ = value.partition(":")
        if not (seq.isdigit() and int(seq) >= 1 and len(hash_) == 64 and all(c in "0123456789abcdef" for c in hash_)):
            raise click.BadParameter(f"{value!r} is not SEQ:HASH (64 lowercase hex digits)")
        checkpoints.append(Checkpoint(int(seq), hash_))
    return checkpoints


@audit_group.command("verify")
@click.option(
    "--checkpoint",
    "published",
    multiple=True,
    metavar="SEQ:HASH",
    callback=_published_checkpoints,
    help="A checkpoint as it was published (repeatable); checked with those recorded.",
)
def audit_verify(published) -> None:  # type: ignore[no-untyped-def]
    """Verify the whole chain and its checkpoints; exit 1 naming the first bad seq."""
    from payouts.services import audit_trail

    result = _act(audit_trail.verify, published)
    if not result.ok:
        click.echo(result.summary(), err=True)
        sys.exit(1)
    click.echo(result.summary())


@audit_group.command("checkpoint")
@click.option("--note", required=True, help="Where the checkpoint is published.")
def audit_checkpoint(note: str) -> None:
    """Record the chain's head as a checkpoint (after verifying the chain since the last one)."""
    from payouts.services import audit_trail

    checkpoint = _act(audit_trail.record_checkpoint, note)
    click.echo(f"checkpoint #{checkpoint.id}: seq {checkpoint.seq} hash {checkpoint.hash}")


@audit_group.command("export")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
def audit_export(file: str) -> None:
    """Write every event, then every checkpoint, to FILE as JSON Lines (- for stdout)."""
    from payouts.services import audit_trail

    counts = {"event": 0, "checkpoint": 0}
    with _session() as session:
        try:
            records = audit_trail.export_records(session, _operator())
        except DomainError as exc:
            _fail(exc)
        try:
            with click.open_file(file, "w", encoding="utf-8", atomic=file != "-") as out:
                for record in records:
                    out.write(audit_trail.export_line(record))
                    counts[record["type"]] += 1
        except BrokenPipeError:  # `payouts audit export - | head`: the reader has had enough
            sys.stderr.close()
            sys.exit(0)
    click.echo(f"exported {counts['event']} events and {counts['checkpoint']} checkpoints", err=True)


# --- API keys -------------------------------------------------------------------------------
@cli.group("api-keys")
def api_keys_group() -> None:
    """Keys for /api/v1: each acts as one role; the secret is shown once, stored hashed."""


@api_keys_group.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["staff", "approver", "admin", "regulator"]),
              help="The role the key acts as (regulator keys can only read).")
def api_keys_create(name: str, role: str) -> None:
    from payouts.services import api_keys

    created = _act(api_keys.create_key, name=name, role=role)
    click.echo(f"created API key #{created.key.id} {created.key.name!r} (role {created.key.role})", err=True)
    click.echo("the key is shown once and cannot be recovered; store it now:", err=True)
    click.echo(created.secret)


@api_keys_group.command("list")
def api_keys_list() -> None:
    from payouts.services import api_keys

    for key in _act(api_keys.list_keys):
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
        click.echo(f"#{key.id}\t{key.prefix}…\t{key.name}\t{key.role}\t{state}\tlast used {used}")


@api_keys_group.command("revoke")
@click.argument("key_id", type=int)
def api_keys_revoke(key_id: int) -> None:
    from payouts.services import api_keys

    key = _act(api_keys.revoke_key, key_id)
    click.echo(f"revoked API key #{key.id} {key.name!r}")


# --- allocation scenario (no database) ------------------------------------------------------
@cli.command("allocate-scenario", with_appcontext=False)
@click.argument("file", type=click.File("rb"))
def allocate_scenario(file) -> None:  # type: ignore[no-untyped-def]
    """Run the allocation engine on a scenario (JSON; FILE or - for stdin); print the result."""
    from payouts.domain.allocation import allocate, parse_scenario, result_to_json

    try:
        try:
            data = json.loads(file.read().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValidationError("input", f"is not valid JSON: {exc}") from None
        result = allocate(parse_scenario(data))
    except ValidationError as exc:
        click.echo(f"{exc.field}: {exc.message}", err=True)
        sys.exit(2)
    click.echo(json.dumps(result_to_json(result), ensure_ascii=False))


if __name__ == "__main__":  # pragma: no cover
    main()
