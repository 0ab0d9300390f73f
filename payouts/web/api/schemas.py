"""marshmallow schemas of the API: request bodies and query strings are validated with them,
responses are dumped through them, and the OpenAPI document is generated from them.

Money is whole yen as integers; crypto quantities, prices and exact values are decimal strings
(an 18-decimal quantity does not fit a JSON number safely, and a float is never exact).
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from payouts.domain.claims import ClaimStatus
from payouts.domain.disbursements import DisbursementStatus

INCIDENT_TYPES = ("hack", "operational_failure", "insider_fraud", "other")
MAX_LIMIT = 200


class Schema(ma.Schema):
    class Meta:
        ordered = True


def Yen(**kw):  # type: ignore[no-untyped-def]  # noqa: N802
    return fields.Integer(strict=True, metadata={"description": "whole yen", **kw.pop("metadata", {})}, **kw)


def DecimalString(**kw):  # type: ignore[no-untyped-def]  # noqa: N802
    return fields.String(metadata={"description": "an exact decimal number as a string, e.g. \"0.5\"",
                                   "example": "10000000", **kw.pop("metadata", {})}, **kw)


def Time(**kw):  # type: ignore[no-untyped-def]  # noqa: N802
    return fields.DateTime(format="iso", **kw)


# --- errors and pages -------------------------------------------------------------------------


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"description": "machine-readable, e.g. validation_error"})
    message = fields.String(required=True)
    field = fields.String(allow_none=True, metadata={"description": "the offending field, when there is one"})
    details = fields.Raw(allow_none=True)


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class PageArgs(Schema):
    after = fields.String(metadata={"description": "the `next` cursor of the previous page"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_LIMIT))


def page_of(item: type[Schema], name: str) -> type[Schema]:
    return Schema.from_dict({
        "items": fields.List(fields.Nested(item), required=True),
        "next": fields.String(required=True, allow_none=True,
                              metadata={"description": "cursor of the next page; null on the last page"}),
    }, name=name)


# --- incidents --------------------------------------------------------------------------------


class IncidentCreateSchema(Schema):
    ref = fields.String(required=True, validate=validate.Length(min=1, max=40))
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    incident_type = fields.String(required=True, validate=validate.OneOf(INCIDENT_TYPES))
    occurred_at = fields.AwareDateTime(required=True, format="iso")
    discovered_at = fields.AwareDateTime(required=True, format="iso")
    description = fields.String(load_default="", validate=validate.Length(max=10_000))


class PriceSchema(Schema):
    asset = fields.String(required=True)
    price_jpy = DecimalString(required=True)
    source = fields.String(required=True)
    set_by = fields.String(required=True)
    set_at = Time(required=True)


class PriceSetSchema(Schema):
    asset = fields.String(required=True, validate=validate.Length(min=1, max=16))
    price = DecimalString(required=True, validate=validate.Length(min=1, max=60),
                          metadata={"description": "yen per whole unit, a decimal string"})
    source = fields.String(required=True, validate=validate.Length(min=1, max=500))


class InsurerPaymentSchema(Schema):
    layer = fields.String(required=True, validate=validate.Length(min=1, max=40),
                          metadata={"description": "the insurance layer's code, e.g. L1"})
    amount_jpy = Yen(required=True, validate=validate.Range(min=1))


class ReceivableSchema(Schema):
    incident = fields.String(required=True)
    layer = fields.String(required=True)
    amount_jpy = Yen(required=True)
    received_jpy = Yen(required=True)
    instructed = fields.Boolean(required=True, metadata={
        "description": "whether the layer's part of every payout has been instructed (once received in full)"})


class IncidentSchema(Schema):
    ref = fields.String(required=True)
    title = fields.String(required=True)
    incident_type = fields.String(required=True)
    status = fields.String(required=True)
    occurred_at = Time(required=True)
    discovered_at = Time(required=True)
    description = fields.String(required=True)
    created_at = Time(required=True)
    prices = fields.List(fields.Nested(PriceSchema), required=True)


IncidentPageSchema = page_of(IncidentSchema, "IncidentPage")


class LossImportSchema(Schema):
    id = fields.Integer(required=True)
    incident = fields.String(required=True)
    filename = fields.String(required=True)
    sha256 = fields.String(required=True)
    byte_size = fields.Integer(required=True)
    row_count = fields.Integer(required=True)
    customers_created = fields.Integer(required=True)
    customers_updated = fields.Integer(required=True)
    positions_created = fields.Integer(required=True)
    positions_updated = fields.Integer(required=True)
    positions_unchanged = fields.Integer(required=True)
    imported_by = fields.String(required=True)
    created_at = Time(required=True)


class LossImportResultSchema(LossImportSchema):
    outcome = fields.String(required=True, validate=validate.OneOf(("imported", "already_imported")))


LossImportPageSchema = page_of(LossImportSchema, "LossImportPage")


class UploadSchema(Schema):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


class OpenedSchema(Schema):
    incident = fields.String(required=True)
    opened = fields.Integer(required=True)


# --- customers and claims ---------------------------------------------------------------------


class ClaimSchema(Schema):
    id = fields.Integer(required=True)
    incident = fields.String(required=True)
    customer = fields.String(required=True)
    state = fields.String(required=True)
    version = fields.Integer(required=True)
    total_jpy = Yen(required=True)
    row_version = fields.Integer(required=True)
    state_reason = fields.String(required=True)
    created_at = Time(required=True)
    updated_at = Time(required=True)
    accepted_at = Time(required=True, allow_none=True)
    decided_at = Time(required=True, allow_none=True)
    paid_at = Time(required=True, allow_none=True)


class ClaimLineSchema(Schema):
    asset = fields.String(required=True)
    amount = DecimalString(required=True)
    price_jpy = DecimalString(required=True)
    price_source = fields.String(required=True)
    value_jpy = DecimalString(required=True)


class ApprovalSchema(Schema):
    by = fields.String(required=True)
    role = fields.String(required=True)
    version = fields.Integer(required=True)
    created_at = Time(required=True)
    voided_at = Time(required=True, allow_none=True)


class ClaimDetailSchema(ClaimSchema):
    lines = fields.List(fields.Nested(ClaimLineSchema), required=True)
    approvals_required = fields.Integer(required=True)
    approvals = fields.List(fields.Nested(ApprovalSchema), required=True)


ClaimPageSchema = page_of(ClaimSchema, "ClaimPage")


class ClaimArgs(PageArgs):
    incident = fields.String()
    customer = fields.String()
    state = fields.String(validate=validate.OneOf([s.value for s in ClaimStatus]))


class CustomerSchema(Schema):
    ref = fields.String(required=True)
    name = fields.String(required=True)
    created_at = Time(required=True)


class CustomerClaimSchema(Schema):
    id = fields.Integer(required=True)
    incident = fields.String(required=True)
    state = fields.String(required=True)
    total_jpy = Yen(required=True)


class CustomerDetailSchema(CustomerSchema):
    claims = fields.List(fields.Nested(CustomerClaimSchema), required=True)


CustomerPageSchema = page_of(CustomerSchema, "CustomerPage")


# --- allocation -------------------------------------------------------------------------------


class SourceSchema(Schema):
    source_id = fields.String(required=True)
    available_jpy = Yen(required=True)
    used_jpy = Yen(required=True)


class BucketSchema(Schema):
    payout_ratio = fields.String(required=True)
    customers = fields.Integer(required=True)


class PreviewSchema(Schema):
    incident = fields.String(required=True)
    digest = fields.String(required=True, metadata={"description": "pass to the commit to refuse changed inputs"})
    customers = fields.Integer(required=True)
    total_eligible_jpy = Yen(required=True)
    total_funded_jpy = Yen(required=True)
    shortfall_jpy = Yen(required=True)
    sources = fields.List(fields.Nested(SourceSchema), required=True)
    payout_ratios = fields.List(fields.Nested(BucketSchema), required=True)


class CommitSchema(Schema):
    digest = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64),
                           metadata={"description": "the preview's digest: refuse if any input changed since"})


class RunSchema(Schema):
    id = fields.Integer(required=True)
    incident = fields.String(required=True)
    kind = fields.String(required=True)
    sequence = fields.Integer(required=True)
    inputs_sha256 = fields.String(required=True)
    customers = fields.Integer(required=True)
    total_eligible_jpy = Yen(required=True)
    total_funded_jpy = Yen(required=True)
    shortfall_jpy = Yen(required=True)
    created_by = fields.String(required=True)
    created_at = Time(required=True)
    sources = fields.List(fields.Nested(SourceSchema), required=True)


RunPageSchema = page_of(RunSchema, "AllocationRunPage")


class LineSchema(Schema):
    customer = fields.String(required=True)
    approved_jpy = Yen(required=True)
    eligible_jpy = Yen(required=True)
    payout_jpy = Yen(required=True)
    by_source = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


LinePageSchema = page_of(LineSchema, "AllocationLinePage")


# --- disbursements, reconciliation, reports ---------------------------------------------------


class DisbursementSchema(Schema):
    id = fields.Integer(required=True)
    incident = fields.String(required=True)
    run_id = fields.Integer(required=True)
    customer = fields.String(required=True)
    source_id = fields.String(required=True)
    amount_jpy = Yen(required=True)
    state = fields.String(required=True)
    attempts = fields.Integer(required=True)
    rail = fields.String(required=True, allow_none=True)
    rail_reference = fields.String(required=True, allow_none=True)
    failure_reason = fields.String(required=True)
    created_at = Time(required=True)
    updated_at = Time(required=True)
    paid_at = Time(required=True, allow_none=True)


DisbursementPageSchema = page_of(DisbursementSchema, "DisbursementPage")


class DisbursementArgs(PageArgs):
    incident = fields.String()
    run_id = fields.Integer(validate=validate.Range(min=1, max=2**62))
    state = fields.String(validate=validate.OneOf([s.value for s in DisbursementStatus]))


class StateTotalSchema(Schema):
    state = fields.String(required=True)
    count = fields.Integer(required=True)
    amount_jpy = Yen(required=True)


class SourceLineSchema(Schema):
    source_id = fields.String(required=True)
    allocated_jpy = Yen(required=True)
    awaiting_funds_jpy = Yen(required=True)
    instructed_jpy = Yen(required=True)
    difference_jpy = Yen(required=True)


class ReconciliationSchema(Schema):
    incident = fields.String(required=True)
    balanced = fields.Boolean(required=True)
    sources = fields.List(fields.Nested(SourceLineSchema), required=True)
    by_state = fields.List(fields.Nested(StateTotalSchema), required=True)
    instructed_jpy = Yen(required=True)
    paid_jpy = Yen(required=True)
    pending_jpy = Yen(required=True)
    failed_jpy = Yen(required=True)
    cancelled_jpy = Yen(required=True)
    status_difference_jpy = Yen(required=True)


class ReportSchema(Schema):
    incident = fields.String(required=True)
    status = fields.String(required=True)
    customers = fields.Integer(required=True)
    positions = fields.Integer(required=True)
    imports = fields.Integer(required=True)
    claims_by_state = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    disbursements_by_state = fields.List(fields.Nested(StateTotalSchema), required=True)
    allocation_runs = fields.Integer(required=True)
    total_funded_jpy = Yen(required=True)
    paid_jpy = Yen(required=True)


# --- audit ------------------------------------------------------------------------------------


class AuditEventSchema(Schema):
    seq = fields.Integer(required=True)
    occurred_at = Time(required=True)
    actor = fields.String(required=True)
    actor_role = fields.String(required=True)
    action = fields.String(required=True)
    subject_type = fields.String(required=True)
    subject_id = fields.String(required=True)
    summary = fields.String(required=True)
    details = fields.String(required=True, metadata={"description": "canonical JSON, as hashed"})
    request_id = fields.String(required=True, allow_none=True)
    prev_hash = fields.String(required=True)
    hash = fields.String(required=True)


AuditEventPageSchema = page_of(AuditEventSchema, "AuditEventPage")


class AuditEventArgs(PageArgs):
    actor = fields.String(validate=validate.Length(max=200))
    action = fields.String(validate=validate.Length(max=80))
    subject_type = fields.String(validate=validate.Length(max=40))
    subject_id = fields.String(validate=validate.Length(max=80))


class CheckpointSchema(Schema):
    id = fields.Integer(required=True)
    seq = fields.Integer(required=True)
    hash = fields.String(required=True)
    created_at = Time(required=True)
    created_by = fields.String(required=True)
    note = fields.String(required=True)


CheckpointPageSchema = page_of(CheckpointSchema, "CheckpointPage")


# --- API keys ---------------------------------------------------------------------------------


class ApiKeySchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True)
    role = fields.String(required=True)
    created_by = fields.String(required=True)
    created_at = Time(required=True)
    revoked_at = Time(required=True, allow_none=True)
    last_used_at = Time(required=True, allow_none=True)


class ApiKeyRevokeSchema(Schema):
    id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=2**62))


ApiKeyPageSchema = page_of(ApiKeySchema, "ApiKeyPage")


# --- reserve adequacy ---------------------------------------------------------------------


class VolumeInSchema(Schema):
    month = fields.Date(required=True, metadata={"description": "any day of the month; stored as its first day"})
    market = fields.String(required=True, validate=validate.Length(min=1, max=40))
    volume_jpy = Yen(required=True, validate=validate.Range(min=0))


class VolumeSchema(VolumeInSchema):
    id = fields.Integer(required=True)
    recorded_by = fields.String(required=True)
    recorded_at = fields.DateTime(required=True)


class SnapshotInSchema(Schema):
    as_of = fields.Date(required=True)
    wallet = fields.String(required=True, validate=validate.OneOf(["cold", "hot"]))
    value_jpy = Yen(required=True, validate=validate.Range(min=0))


class SnapshotSchema(SnapshotInSchema):
    id = fields.Integer(required=True)
    recorded_by = fields.String(required=True)
    recorded_at = fields.DateTime(required=True)


class PastIncidentInSchema(Schema):
    occurred_on = fields.Date(required=True)
    loss_jpy = Yen(required=True, validate=validate.Range(min=0))
    description = fields.String(required=True, validate=validate.Length(min=1, max=500))


class PastIncidentSchema(PastIncidentInSchema):
    id = fields.Integer(required=True)
    recorded_by = fields.String(required=True)
    recorded_at = fields.DateTime(required=True)


class ComponentSchema(Schema):
    key = fields.String(required=True, metadata={"description": "a market, cold, hot or incident"})
    base_jpy = Yen(required=True)
    rate = DecimalString(required=True)
    amount_jpy = Yen(required=True)


class RequirementArgs(Schema):
    as_of = fields.Date(metadata={"description": "the date (Japan) to compute for; today by default"})


class RequirementSchema(Schema):
    as_of = fields.Date(required=True)
    rule_version = fields.Integer(required=True)
    rule_illustrative = fields.Boolean(required=True)
    volume_components = fields.List(fields.Nested(ComponentSchema), required=True)
    volume_part_jpy = Yen(required=True)
    holdings_components = fields.List(fields.Nested(ComponentSchema), required=True)
    holdings_part_jpy = Yen(required=True)
    incident_component = fields.Nested(ComponentSchema, required=True)
    incident_part_jpy = Yen(required=True)
    sum_jpy = Yen(required=True)
    gross_requirement_jpy = Yen(required=True)
    binding = fields.String(required=True, metadata={"description": "floor, cap or sum"})
    insurance_available_jpy = Yen(required=True)
    insurance_offset_jpy = Yen(required=True)
    cash_requirement_jpy = Yen(required=True)
    reserve_balance_jpy = Yen(required=True)
    surplus_jpy = Yen(required=True, metadata={"description": "negative: a deficit"})
    met = fields.Boolean(required=True)


VolumePageSchema = page_of(VolumeSchema, "VolumePage")
SnapshotPageSchema = page_of(SnapshotSchema, "SnapshotPage")
PastIncidentPageSchema = page_of(PastIncidentSchema, "PastIncidentPage")


class ImportJobSchema(Schema):
    id = fields.Integer(required=True)
    incident = fields.String(required=True)
    filename = fields.String(required=True)
    byte_size = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"description": "queued, running or done"})
    outcome = fields.String(allow_none=True, metadata={"description": "imported, already_imported or rejected"})
    import_id = fields.Integer(allow_none=True, metadata={"description": "the loss import it made"})
    rows = fields.Integer(allow_none=True)
    problem_count = fields.Integer(allow_none=True)
    problems = fields.List(fields.String(), required=True, metadata={"description": "the first problems, by line"})
    created_at = fields.DateTime(required=True)
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class UploadArgs(Schema):
    mode = fields.String(validate=validate.OneOf(["auto", "job"]), load_default="auto", metadata={
        "description": "job: always import as a background job (202 with a status resource); auto: a job"
                       " only above the server's size threshold"})
