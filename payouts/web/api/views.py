"""The /api/v1 resources. Each view declares the key scopes it admits (auth.api_roles), calls
one service, and shapes the answer through a schema; every POST honours Idempotency-Key."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from payouts.db.models import AllocationRun, AuditCheckpoint, Claim, Disbursement, Incident, LossImport
from payouts.domain.claims import FourEyesPolicy
from payouts.domain.money import canonical_decimal
from payouts.services import (
    adequacy,
    allocation,
    api_keys,
    api_reads,
    audit_trail,
    claim_queue,
    claims,
    disbursements,
    import_jobs,
    incidents,
    loss_import,
)
from payouts.web import context
from payouts.web.api import pagination, schemas as s
from payouts.web.api.auth import ADMINS, READERS, WRITERS, actor, api_roles
from payouts.web.api.errors import ApiError
from payouts.web.api.idempotent import HEADER_DOC, idempotent

bp = Blueprint("api_v1", __name__, description="Payouts back-office API, version 1")
WRITE_DOC = {"parameters": [HEADER_DOC]}


def _policy() -> FourEyesPolicy:
    return FourEyesPolicy(current_app.extensions["payouts"].config.four_eyes_threshold_jpy)


def _page(rows: list[Any], limit: int, key, shape) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    result = pagination.page(rows, limit, key)
    result["items"] = [shape(row) for row in result["items"]]
    return result


# --- shaping --------------------------------------------------------------------------------


def _incident(incident: Incident) -> dict[str, Any]:
    return {
        "ref": incident.ref, "title": incident.title, "incident_type": incident.incident_type,
        "status": incident.status, "occurred_at": incident.occurred_at, "discovered_at": incident.discovered_at,
        "description": incident.description, "created_at": incident.created_at,
        "prices": [{"asset": p.asset_code, "price_jpy": canonical_decimal(p.price_jpy), "source": p.source,
                    "set_by": p.set_by_label, "set_at": p.set_at}
                   for p in api_reads.prices_of(context.db(), incident)],
    }


def _import(record: LossImport, incident_ref: str) -> dict[str, Any]:
    return {
        "id": record.id, "incident": incident_ref, "filename": record.filename, "sha256": record.sha256,
        "byte_size": record.byte_size, "row_count": record.row_count,
        "customers_created": record.customers_created, "customers_updated": record.customers_updated,
        "positions_created": record.positions_created, "positions_updated": record.positions_updated,
        "positions_unchanged": record.positions_unchanged, "imported_by": record.imported_by_label,
        "created_at": record.created_at,
    }


def _claim(claim: Claim, incident_ref: str, customer_ref: str) -> dict[str, Any]:
    return {
        "id": claim.id, "incident": incident_ref, "customer": customer_ref, "state": claim.status,
        "version": claim.version, "total_jpy": claim.total_jpy, "row_version": claim.row_version,
        "state_reason": claim.status_reason, "created_at": claim.created_at, "updated_at": claim.updated_at,
        "accepted_at": claim.accepted_at, "decided_at": claim.decided_at, "paid_at": claim.paid_at,
    }


def _sources(run: AllocationRun) -> list[dict[str, Any]]:
    return [{"source_id": src.source_id, "available_jpy": src.available_jpy, "used_jpy": src.used_jpy}
            for src in run.sources]


def _run(run: AllocationRun, incident_ref: str) -> dict[str, Any]:
    return {
        "id": run.id, "incident": incident_ref, "kind": run.kind, "sequence": run.sequence,
        "inputs_sha256": run.inputs_sha256, "customers": run.customers,
        "total_eligible_jpy": run.total_eligible_jpy, "total_funded_jpy": run.total_funded_jpy,
        "shortfall_jpy": run.shortfall_jpy, "created_by": run.created_by_label, "created_at": run.created_at,
        "sources": _sources(run),
    }


def _disbursement(row: Disbursement, incident_ref: str, customer_ref: str) -> dict[str, Any]:
    return {
        "id": row.id, "incident": incident_ref, "run_id": row.run_id, "customer": customer_ref,
        "source_id": row.source_id, "amount_jpy": row.amount_jpy, "state": row.status, "attempts": row.attempts,
        "rail": row.rail, "rail_reference": row.rail_reference, "failure_reason": row.failure_reason,
        "created_at": row.created_at, "updated_at": row.updated_at, "paid_at": row.paid_at,
    }


def _checkpoint(c: AuditCheckpoint) -> dict[str, Any]:
    return {"id": c.id, "seq": c.seq, "hash": c.hash, "created_at": c.created_at,
            "created_by": c.created_by_label, "note": c.note}


def _key(k) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {"id": k.id, "name": k.name, "prefix": k.prefix, "role": k.role, "created_by": k.created_by_label,
            "created_at": k.created_at, "revoked_at": k.revoked_at, "last_used_at": k.last_used_at}


# --- incidents ------------------------------------------------------------------------------


@bp.route("/incidents", methods=["GET"])
@api_roles(READERS)
@bp.arguments(s.PageArgs, location="query")
@bp.response(200, s.IncidentPageSchema)
def list_incidents(args: dict[str, Any]):  # type: ignore[no-untyped-def]
    """List incidents (oldest first)."""
    rows = api_reads.incidents_page(context.db(), actor(), pagination.decode(args.get("after")), args["limit"])
    return _page(rows, args["limit"], lambda i: i.id, _incident)


@bp.route("/incidents", methods=["POST"])
@api_roles(WRITERS)
@bp.arguments(s.IncidentCreateSchema)
@idempotent
@bp.response(201, s.IncidentSchema)
@bp.doc(**WRITE_DOC)
def create_incident(data: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Record an incident."""
    incident = incidents.record_incident(context.db(), actor(), **data)
    return _incident(incident)


@bp.route("/incidents/<ref>", methods=["GET"])
@api_roles(READERS)
@bp.response(200, s.IncidentSchema)
def read_incident(ref: str):  # type: ignore[no-untyped-def]
    """Read one incident with its reference prices."""
    return _incident(incidents.get_incident(context.db(), actor(), ref))


@bp.route("/incidents/<ref>/prices", methods=["POST"])
@api_roles(WRITERS)
@bp.arguments(s.PriceSetSchema)
@idempotent
@bp.response(200, s.IncidentSchema)
@bp.doc(**WRITE_DOC)
def set_price(data: dict[str, Any], ref: str):  # type: ignore[no-untyped-def]
    """Fix (or correct) the yen reference price of one asset; answers with the incident."""
    session = context.db()
    incidents.set_reference_price(session, actor(), incident_ref=ref, asset_code=data["asset"],
                                  price=data["price"], source=data["source"])
    return _incident(incidents.get_incident(session, actor(), ref))


@bp.route("/incidents/<ref>/insurer-payments", methods=["POST"])
@api_roles(WRITERS)
@bp.arguments(s.InsurerPaymentSchema)
@idempotent
@bp.response(200, s.ReceivableSchema)
@bp.doc(**WRITE_DOC)
def record_insurer_payment(data: dict[str, Any], ref: str):  # type: ignore[no-untyped-def]
    """Record money an insurer paid on a layer; once the layer's share is in full, its part of
    every payout is instructed and paid."""
    state = current_app.extensions["payouts"]
    receivable = disbursements.record_insurer_payment(
        context.db(), actor(), incident_ref=ref, layer_code=data["layer"], amount_jpy=data["amount_jpy"],
        batch_size=state.config.disbursement_batch_size, dispatch=state.dispatch)
    return {"incident": ref, "layer": data["layer"], "amount_jpy": receivable.amount_jpy,
            "received_jpy": receivable.received_jpy,
            "instructed": receivable.received_jpy == receivable.amount_jpy}


@bp.route("/incidents/<ref>/report", methods=["GET"])
@api_roles(READERS)
@bp.response(200, s.ReportSchema)
def incident_report(ref: str):  # type: ignore[no-untyped-def]
    """The incident in figures: losses imported, claims by state, money allocated and paid."""
    session, who = context.db(), actor()
    incident = incidents.get_incident(session, who, ref)
    summary = incidents.summarize_incident(session, who, incident)
    counts = claim_queue.claim_counts(session, who, incident.id)
    recon = disbursements.reconcile(session, who, ref)
    run_rows = allocation.runs(session, who, incident)
    return {
        "incident": ref, "status": incident.status, "customers": summary.customers,
        "positions": summary.positions, "imports": summary.imports, "claims_by_state": counts,
        "disbursements_by_state": [{"state": t.status, "count": t.count, "amount_jpy": t.amount_jpy}
                                   for t in recon.by_status],
        "allocation_runs": len(run_rows), "total_funded_jpy": sum(r.total_funded_jpy for r in run_rows),
        "paid_jpy": recon.paid_jpy,
    }


# --- loss imports ---------------------------------------------------------------------------


@bp.route("/incidents/<ref>/loss-imports", methods=["POST"])
@api_roles(WRITERS)
@bp.arguments(s.UploadArgs, location="query")
@bp.arguments(s.UploadSchema, location="files")
@idempotent
@bp.response(201, s.LossImportResultSchema)
@bp.alt_response(200, schema=s.LossImportResultSchema, description="the same file was imported before",
                 success=True)
@bp.alt_response(202, schema=s.ImportJobSchema, description="a large file: imported by a worker; follow"
                 " GET /incidents/{ref}/import-jobs/{id}", success=True)
@bp.doc(**WRITE_DOC)
def upload_losses(args: dict[str, Any], files: dict[str, Any], ref: str):  # type: ignore[no-untyped-def]
    """Upload a loss file (CSV, multipart field `file`), imported all or nothing. A small file
    is imported in the request (a rejected file answers 422 with the problems by line); a file
    above the server's threshold, or any file with ?mode=job, is imported by a worker: 202 and
    an import job to follow."""
    upload = files["file"]
    if not hasattr(upload, "stream"):
        raise ApiError(422, "validation_error", "file: send the loss file as a multipart upload", "file")
    incidents.get_incident(context.db(), actor(), ref)  # 404 before reading a large file
    state = current_app.extensions["payouts"]
    stream = upload.stream
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    if args.get("mode") == "job" or size > state.config.import_job_bytes:
        job = import_jobs.queue_import(context.db(), actor(), ref, stream, upload.filename or "upload.csv",
                                       state.config.upload_dir)
        if state.dispatch is not None:
            state.dispatch(import_jobs.RUN_IMPORT_JOB, job.id)
        return _job(import_jobs.get_job(context.db(), actor(), ref, job.id), ref), 202
    report = loss_import.import_losses(context.db(), actor(), ref, upload.stream, upload.filename or "upload.csv")
    if report.status == "rejected":
        raise ApiError(422, "loss_file_rejected",
                       f"file: rejected with {report.problem_count} problem(s); nothing was imported"
                       + (f" (first: {report.problems[0]})" if report.problems else ""), "file")
    assert report.loss_import is not None
    body = _import(report.loss_import, ref) | {"outcome": report.status}
    return body, 201 if report.status == "imported" else 200


def _job(job: Any, ref: str) -> dict[str, Any]:
    return {"id": job.id, "incident": ref, "filename": job.filename, "byte_size": job.byte_size,
            "status": job.status, "outcome": job.outcome, "import_id": job.import_id, "rows": job.rows,
            "problem_count": job.problem_count, "problems": json.loads(job.problems or "[]"),
            "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at}


@bp.route("/incidents/<ref>/import-jobs/<int(max=9223372036854775807):job_id>", methods=["GET"])
@api_roles(READERS)
@bp.response(200, s.ImportJobSchema)
def read_import_job(ref: str, job_id: int):  # type: ignore[no-untyped-def]
    """A loss file imported by a worker: queued, running or done, and how it ended."""
    return _job(import_jobs.get_job(context.db(), actor(), ref, job_id), ref)


@bp.route("/incidents/<ref>/loss-imports", methods=["GET"])
@api_roles(READERS)
@bp.arguments(s.PageArgs, location="query")
@bp.response(200, s.LossImportPageSchema)
def list_imports(args: dict[str, Any], ref: str):  # type: ignore[no-untyped-def]
    """The loss imports of an incident."""
    rows = api_reads.imports_page(context.db(), actor(), ref, pagination.decode(args.get("after")), args["limit"])
    return _page(rows, args["limit"], lambda r: r.id, lambda r: _import(r, ref))


@bp.route("/incidents/<ref>/loss-imports/<int(max=9223372036854775807):import_id>", methods=["GET"])
@api_roles(READERS)
@bp.response(200, s.LossImportSchema)
def read_import(ref: str, import_id: int):  # type: ignore[no-untyped-def]
    """One loss import (its status resource)."""
    session, who = context.db(), actor()
    return _import(incidents.get_import(session, who, incidents.get_incident(session, who, ref), import_id), ref)


# --- customers and claims -------------------------------------------------------------------


@bp.route("/incidents/<ref>/claims/open", methods=["POST"])
@api_roles(WRITERS)
@idempotent
@bp.response(200, s.OpenedSchema)
@bp.doc(**WRITE_DOC)
def open_claims(ref: str):  # type: ignore[no-untyped-def]
    """Open the incident's claims to customers (prices and losses freeze)."""
    return {"incident": ref, "opened": claims.open_claims(context.db(), actor(), ref)}


@bp.route("/customers", methods=["GET"])
@api_roles(READERS)
@bp.arguments(s.PageArgs, location="query")
@bp.response(200, s.CustomerPageSchema)
def list_customers(args: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Customers known from loss imports."""
    rows = api_reads.customers_page(context.db(), actor(), pagination.decode(args.get("after")), args["limit"])
    return _page(rows, args["limit"], lambda c: c.id,
                 lambda c: {"ref": c.external_ref, "name": c.name, "created_at": c.created_at})


@bp.route("/customers/<customer_ref>", methods=["GET"])
@api_roles(READERS)
@bp.response(200, s.CustomerDetailSchema)
def read_customer(customer_ref: str):  # type: ignore[no-untyped-def]
    """One customer and their claims."""
    customer, rows = api_reads.customer(context.db(), actor(), customer_ref)
    return {"ref": customer.external_ref, "name": customer.name, "created_at": customer.created_at,
            "claims": [{"id": c.id, "incident": ref, "state": c.status, "total_jpy": c.total_jpy} for c, ref in rows]}


@bp.route("/claims", methods=["GET"])
@api_roles(READERS)
@bp.arguments(s.ClaimArgs, location="query")
@bp.response(200, s.ClaimPageSchema)
def list_claims(args: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Claims, filtered by incident, customer and state."""
    rows = api_reads.claims_page(context.db(), actor(), incident_ref=args.get("incident"),
                                 customer_ref=args.get("customer"), status=args.get("state"),
                                 after=pagination.decode(args.get("after")), limit=args["limit"])
    return _page(rows, args["limit"], lambda r: r[0].id, lambda r: _claim(*r))


@bp.route("/claims/<int(max=9223372036854775807):claim_id>", methods=["GET"])
@api_roles(READERS)
@bp.response(200, s.ClaimDetailSchema)
def read_claim(claim_id: int):  # type: ignore[no-untyped-def]
    """One claim with its valued lines and approvals."""
    detail = claims.claim_for_staff(context.db(), actor(), claim_id, _policy())
    body = _claim(detail.claim, detail.incident.ref, detail.customer.external_ref)
    body["lines"] = [{"asset": line.asset, "amount": line.amount, "price_jpy": canonical_decimal(line.price_jpy),
                      "price_source": line.price_source, "value_jpy": line.value_exact} for line in detail.lines]
    body["approvals_required"] = detail.approvals_required
    body["approvals"] = [{"by": a.user_label, "role": a.role, "version": a.version, "created_at": a.created_at,
                          "voided_at": a.voided_at} for a in detail.approvals]
    return body


# --- allocation -----------------------------------------------------------------------------


@bp.route("/incidents/<ref>/allocation/preview", methods=["GET"])
@api_roles(READERS)
@bp.response(200, s.PreviewSchema)
def preview_allocation(ref: str):  # type: ignore[no-untyped-def]
    """Compute the allocation the records give now, storing nothing."""
    preview = allocation.preview(context.db(), actor(), ref)
    result = preview.result
    return {
        "incident": ref, "digest": preview.digest, "customers": len(result.customers),
        "total_eligible_jpy": result.total_eligible_jpy, "total_funded_jpy": result.total_funded_jpy,
        "shortfall_jpy": result.shortfall_jpy,
        "sources": [{"source_id": src.id, "available_jpy": src.available_jpy, "used_jpy": src.used_jpy}
                    for src in result.sources],
        "payout_ratios": [{"payout_ratio": label, "customers": n} for label, n in preview.ratio_histogram()],
    }


@bp.route("/incidents/<ref>/allocation-runs", methods=["POST"])
@api_roles(WRITERS)
@bp.arguments(s.CommitSchema)
@idempotent
@bp.response(201, s.RunSchema)
@bp.doc(**WRITE_DOC)
def commit_allocation(data: dict[str, Any], ref: str):  # type: ignore[no-untyped-def]
    """Commit the incident's allocation (optionally only if the inputs still have `digest`);
    the reserve's payments are instructed and queued."""
    state = current_app.extensions["payouts"]
    run = allocation.commit_allocation(context.db(), actor(), ref, expected_digest=data.get("digest"),
                                       dispatch=state.dispatch, batch_size=state.config.disbursement_batch_size)
    return _run(run, ref)


@bp.route("/incidents/<ref>/allocation-runs", methods=["GET"])
@api_roles(READERS)
@bp.arguments(s.PageArgs, location="query")
@bp.response(200, s.RunPageSchema)
def list_runs(args: dict[str, Any], ref: str):  # type: ignore[no-untyped-def]
    """The incident's committed allocation runs."""
    rows = api_reads.runs_page(context.db(), actor(), ref, pagination.decode(args.get("after")), args["limit"])
    return _page(rows, args["limit"], lambda r: r.id, lambda r: _run(r, ref))


@bp.route("/incidents/<ref>/allocation-runs/<int(max=9223372036854775807):run_id>", methods=["GET"])
@api_roles(READERS)
@bp.response(200, s.RunSchema)
def read_run(ref: str, run_id: int):  # type: ignore[no-untyped-def]
    """One allocation run with its sources."""
    session, who = context.db(), actor()
    return _run(allocation.get_run(session, who, incidents.get_incident(session, who, ref), run_id), ref)


@bp.route("/incidents/<ref>/allocation-runs/<int(max=9223372036854775807):run_id>/lines", methods=["GET"])
@api_roles(READERS)
@bp.arguments(s.PageArgs, location="query")
@bp.response(200, s.LinePageSchema)
def run_lines(args: dict[str, Any], ref: str, run_id: int):  # type: ignore[no-untyped-def]
    """Per-customer lines of a run: approved, eligible, paid, and by source."""
    session, who = context.db(), actor()
    run = allocation.get_run(session, who, incidents.get_incident(session, who, ref), run_id)
    rows = api_reads.lines_page(session, who, run, pagination.decode(args.get("after")), args["limit"])
    return _page(rows, args["limit"], lambda r: r[0].customer_id, lambda r: {
        "customer": r[1], "approved_jpy": r[0].approved_jpy, "eligible_jpy": r[0].eligible_jpy,
        "payout_jpy": r[0].payout_jpy, "by_source": _by_source(run, r[0].by_source)})


def _by_source(run: AllocationRun, stored: str) -> dict[str, int]:
    """A line's amounts per source, stored in the run's draw order, keyed by source id."""
    amounts = json.loads(stored)
    if isinstance(amounts, dict):
        return {str(k): int(v) for k, v in amounts.items()}
    return {src.source_id: int(v) for src, v in zip(run.sources, amounts)}


# --- disbursements and reconciliation -------------------------------------------------------


@bp.route("/disbursements", methods=["GET"])
@api_roles(READERS)
@bp.arguments(s.DisbursementArgs, location="query")
@bp.response(200, s.DisbursementPageSchema)
def list_disbursements(args: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Payments, filtered by incident, run and state."""
    rows = api_reads.disbursements_page(context.db(), actor(), incident_ref=args.get("incident"),
                                        status=args.get("state"), run_id=args.get("run_id"),
                                        after=pagination.decode(args.get("after")), limit=args["limit"])
    return _page(rows, args["limit"], lambda r: r[0].id, lambda r: _disbursement(*r))


@bp.route("/disbursements/<int(max=9223372036854775807):disbursement_id>", methods=["GET"])
@api_roles(READERS)
@bp.response(200, s.DisbursementSchema)
def read_disbursement(disbursement_id: int):  # type: ignore[no-untyped-def]
    """One payment."""
    return _disbursement(*api_reads.disbursement(context.db(), actor(), disbursement_id))


@bp.route("/incidents/<ref>/reconciliation", methods=["GET"])
@api_roles(READERS)
@bp.response(200, s.ReconciliationSchema)
def reconciliation(ref: str):  # type: ignore[no-untyped-def]
    """Instructions against allocations by source, and instructions by outcome, to the yen."""
    r = disbursements.reconcile(context.db(), actor(), ref)
    return {
        "incident": ref, "balanced": r.balanced,
        "sources": [{"source_id": x.source_id, "allocated_jpy": x.allocated_jpy,
                     "awaiting_funds_jpy": x.awaiting_funds_jpy, "instructed_jpy": x.instructed_jpy,
                     "difference_jpy": x.difference_jpy} for x in r.sources],
        "by_state": [{"state": t.status, "count": t.count, "amount_jpy": t.amount_jpy} for t in r.by_status],
        "instructed_jpy": r.instructed_jpy, "paid_jpy": r.paid_jpy, "pending_jpy": r.pending_jpy,
        "failed_jpy": r.failed_jpy, "cancelled_jpy": r.cancelled_jpy,
        "status_difference_jpy": r.status_difference_jpy,
    }


# --- audit ----------------------------------------------------------------------------------


@bp.route("/audit/events", methods=["GET"])
@api_roles(READERS)
@bp.arguments(s.AuditEventArgs, location="query")
@bp.response(200, s.AuditEventPageSchema)
def audit_events(args: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Audit events, newest first, filtered by actor (substring), action (prefix) and subject."""
    where = audit_trail.EventFilter(actor=args.get("actor", ""), action=args.get("action", ""),
                                    subject_type=args.get("subject_type", ""),
                                    subject_id=args.get("subject_id", ""))
    before = pagination.decode(args.get("after"))
    rows, following = audit_trail.search_events(context.db(), actor(), where, before_seq=before,
                                                limit=args["limit"])
    return {"items": [{
        "seq": e.seq, "occurred_at": e.occurred_at, "actor": e.actor, "actor_role": e.actor_role,
        "action": e.action, "subject_type": e.subject_type, "subject_id": e.subject_id, "summary": e.summary,
        "details": e.details, "request_id": e.request_id, "prev_hash": e.prev_hash, "hash": e.hash,
    } for e in rows], "next": pagination.encode(following) if following is not None else None}


@bp.route("/audit/checkpoints", methods=["GET"])
@api_roles(READERS)
@bp.arguments(s.PageArgs, location="query")
@bp.response(200, s.CheckpointPageSchema)
def audit_checkpoints(args: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Recorded heads of the audit chain (to compare with where they were published)."""
    rows = api_reads.checkpoints_page(context.db(), actor(), pagination.decode(args.get("after")), args["limit"])
    return _page(rows, args["limit"], lambda c: c.id, _checkpoint)


# --- API keys (admin keys only) -------------------------------------------------------------


@bp.route("/api-keys", methods=["GET"])
@api_roles(ADMINS)
@bp.arguments(s.PageArgs, location="query")
@bp.response(200, s.ApiKeyPageSchema)
def list_api_keys(args: dict[str, Any]):  # type: ignore[no-untyped-def]
    """API keys (never their secrets). Keys are created with `payouts api-keys create`, so a
    secret is never stored anywhere, not even in an idempotency record."""
    after = pagination.decode(args.get("after"))
    rows = [k for k in api_keys.list_keys(context.db(), actor()) if after is None or k.id > after]
    return _page(rows[:args["limit"] + 1], args["limit"], lambda k: k.id, _key)


@bp.route("/api-keys/revoke", methods=["POST"])
@api_roles(ADMINS)
@bp.arguments(s.ApiKeyRevokeSchema)
@idempotent
@bp.response(200, s.ApiKeySchema)
@bp.doc(**WRITE_DOC)
def revoke_api_key(data: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Revoke a key (by id): it stops working at once."""
    return _key(api_keys.revoke_key(context.db(), actor(), data["id"]))


# --- reserve adequacy -----------------------------------------------------------------------


def _recorded(row: Any, **fields: Any) -> dict[str, Any]:
    return {"id": row.id, "recorded_by": row.recorded_by_label, "recorded_at": row.recorded_at, **fields}


def _inputs_page(kind: str, args: dict[str, Any], shape: Any) -> dict[str, Any]:
    """A cursor page of one kind of adequacy input, each row shaped for the response."""
    rows = api_reads.adequacy_inputs_page(context.db(), actor(), kind, pagination.decode(args.get("after")),
                                          args["limit"])
    return _page(rows, args["limit"], lambda row: row.id, shape)


def _volume(v: Any) -> dict[str, Any]:
    return _recorded(v, month=v.month, market=v.market, volume_jpy=v.volume_jpy)


def _snapshot(w: Any) -> dict[str, Any]:
    return _recorded(w, as_of=w.as_of, wallet=w.wallet, value_jpy=w.value_jpy)


def _past(e: Any) -> dict[str, Any]:
    return _recorded(e, occurred_on=e.occurred_on, loss_jpy=e.loss_jpy, description=e.description)


@bp.route("/adequacy/trading-volumes", methods=["POST"])
@api_roles(WRITERS)
@bp.arguments(s.VolumeInSchema)
@idempotent
@bp.response(200, s.VolumeSchema)
@bp.doc(**WRITE_DOC)
def record_volume(data: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Record (or correct) one market's JPY trading volume for a month."""
    return _volume(adequacy.record_volume(context.db(), actor(), month=data["month"], market=data["market"],
                                          volume_jpy=data["volume_jpy"]))


@bp.route("/adequacy/trading-volumes", methods=["GET"])
@api_roles(READERS)
@bp.arguments(s.PageArgs, location="query")
@bp.response(200, s.VolumePageSchema)
def list_volumes(args: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Monthly trading volumes as recorded."""
    return _inputs_page("volumes", args, _volume)


@bp.route("/adequacy/wallet-snapshots", methods=["POST"])
@api_roles(WRITERS)
@bp.arguments(s.SnapshotInSchema)
@idempotent
@bp.response(200, s.SnapshotSchema)
@bp.doc(**WRITE_DOC)
def record_snapshot(data: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Record (or correct) the JPY value of customer assets in cold or hot wallets on a date."""
    return _snapshot(adequacy.record_snapshot(context.db(), actor(), as_of=data["as_of"], wallet=data["wallet"],
                                              value_jpy=data["value_jpy"]))


@bp.route("/adequacy/wallet-snapshots", methods=["GET"])
@api_roles(READERS)
@bp.arguments(s.PageArgs, location="query")
@bp.response(200, s.SnapshotPageSchema)
def list_snapshots(args: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Wallet holdings snapshots as recorded."""
    return _inputs_page("snapshots", args, _snapshot)


@bp.route("/adequacy/incident-history", methods=["POST"])
@api_roles(WRITERS)
@bp.arguments(s.PastIncidentInSchema)
@idempotent
@bp.response(200, s.PastIncidentSchema)
@bp.doc(**WRITE_DOC)
def record_past_incident(data: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Record a past incident the product did not handle (its losses count towards the rule)."""
    return _past(adequacy.record_external_incident(context.db(), actor(), occurred_on=data["occurred_on"],
                                                   loss_jpy=data["loss_jpy"], description=data["description"]))


@bp.route("/adequacy/incident-history", methods=["GET"])
@api_roles(READERS)
@bp.arguments(s.PageArgs, location="query")
@bp.response(200, s.PastIncidentPageSchema)
def list_past_incidents(args: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Past incidents recorded by hand (the product's own incidents count without this)."""
    return _inputs_page("history", args, _past)


def _component(c: Any) -> dict[str, Any]:
    return {"key": c.key, "base_jpy": c.base_jpy, "rate": canonical_decimal(c.rate), "amount_jpy": c.amount_jpy}


@bp.route("/adequacy/requirement", methods=["GET"])
@api_roles(READERS)
@bp.arguments(s.RequirementArgs, location="query")
@bp.response(200, s.RequirementSchema)
def read_requirement(args: dict[str, Any]):  # type: ignore[no-untyped-def]
    """The required liability reserve on a date, every component shown, and whether it is met."""
    result = adequacy.adequacy(context.db(), actor(), args.get("as_of"))
    if result is None:
        raise ApiError(404, "not_found", "no reserve rule is in force on that date", "as_of")
    r = result.requirement
    return {"as_of": result.as_of, "rule_version": result.rule.version, "rule_illustrative": result.rule.illustrative,
            "volume_components": [_component(c) for c in r.volume_components], "volume_part_jpy": r.volume_part_jpy,
            "holdings_components": [_component(c) for c in r.holdings_components],
            "holdings_part_jpy": r.holdings_part_jpy, "incident_component": _component(r.incident_component),
            "incident_part_jpy": r.incident_part_jpy, "sum_jpy": r.sum_jpy,
            "gross_requirement_jpy": r.gross_requirement_jpy, "binding": r.binding,
            "insurance_available_jpy": r.insurance_available_jpy, "insurance_offset_jpy": r.insurance_offset_jpy,
            "cash_requirement_jpy": r.cash_requirement_jpy, "reserve_balance_jpy": r.reserve_balance_jpy,
            "surplus_jpy": r.surplus_jpy, "met": r.met}
