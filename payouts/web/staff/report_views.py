"""The per-incident report for regulatory filing: a printable page and the same figures as CSV.

Everyone in the back office reads it, regulators included; what a regulator views or exports
is recorded in the audit trail by the app's after-request hook, like every page they open.
"""

from __future__ import annotations

import csv
import io

from flask import Response, render_template
from flask_babel import lazy_gettext as _l
from werkzeug.utils import secure_filename

from payouts.domain.roles import BACK_OFFICE_READERS
from payouts.services.incident_report import Duration, IncidentReport, incident_report
from payouts.web.access import roles_required
from payouts.web.context import actor, db
from payouts.web.staff.views import bp

INCIDENT_STATUS_LABELS = {
    "recorded": _l("Recorded (claims not open yet)"),
    "claims_open": _l("Claims open"),
    "paying": _l("Paying"),
    "closed": _l("Closed"),
}
#: The histogram's drawing area in SVG units: bars scale to its height and share its width.
CHART_HEIGHT = 140
CHART_WIDTH = 700
MAX_BAR_STEP = 60


@bp.get("/incidents/<ref>/report")
@roles_required(BACK_OFFICE_READERS)
def incident_report_page(ref: str):  # type: ignore[no-untyped-def]
    report = incident_report(db(), actor(), ref)
    return render_template(
        "staff/incident_report.html", incident=report.incident, report=report, t=report.time_to_payment,
        incident_status_label=lambda s: INCIDENT_STATUS_LABELS.get(s, s), chart=_chart(report))


def _chart(report: IncidentReport) -> dict[str, object]:
    """Integer geometry of the histogram's bars (the template only places them)."""
    t = report.time_to_payment
    buckets = t.histogram
    top = max(t.histogram_max, 1)
    step = min(MAX_BAR_STEP, CHART_WIDTH // max(len(buckets), 1))
    bars = [{"x": 30 + i * step, "height": b.count * CHART_HEIGHT // top, "bucket": b} for i, b in enumerate(buckets)]
    marks = []
    for key, value in (("median", t.median), ("p90", t.p90)):
        # Where the median and the 90th percentile fall (in the open bucket: at its start).
        if value is not None and buckets:
            last = buckets[-1].start_day
            offset = value.seconds * step // 86_400 if value.days < last else last * step
            marks.append({"key": key, "x": 30 + offset})
    return {"bars": bars, "width": CHART_WIDTH + 40, "base": CHART_HEIGHT + 10, "height": CHART_HEIGHT,
            "top": top, "step": step, "marks": marks}


def _cell(value: object) -> object:
    """Text a spreadsheet would run as a formula (titles are typed by staff) is quoted."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _duration_row(writer, name: str, value: Duration | None) -> None:  # type: ignore[no-untyped-def]
    if value is None:
        writer.writerow(["time_to_payment", name, "", "", "", ""])
    else:
        writer.writerow(["time_to_payment", name, value.seconds, value.days, value.hours, value.total_hours])


def report_csv(r: IncidentReport) -> str:
    """Sections one after another, each with its own header row; the first column of every row
    names its section, so each can be filtered out of the file on its own. Amounts are integer
    yen, times integer seconds (and the whole days and hours in them), dates ISO 8601 in JST."""
    out = io.StringIO()
    w = csv.writer(out)
    i = r.incident
    w.writerow(["section", "metric", "value"])
    for metric, value in (
            ("incident_ref", i.ref), ("title", i.title), ("incident_type", i.incident_type), ("status", i.status),
            ("occurred_at_jst", r.occurred_at_jst.isoformat()), ("discovered_at_jst", r.discovered_at_jst.isoformat()),
            ("generated_at_jst", r.generated_at_jst.isoformat(timespec="seconds")),
            ("customers_affected", r.customers_affected), ("claims", r.claims),
            ("total_claimed_jpy", r.total_claimed_jpy), ("allocation_runs", r.runs),
            ("eligible_jpy", r.eligible_jpy), ("funded_jpy", r.funded_jpy), ("shortfall_jpy", r.shortfall_jpy),
            ("allocated_jpy", r.allocated_jpy), ("instructed_jpy", r.instructed_jpy), ("paid_jpy", r.paid_jpy),
            ("outstanding_jpy", r.outstanding_jpy)):
        w.writerow(["summary", metric, _cell(value)])
    w.writerow([])
    w.writerow(["section", "source", "allocated_jpy", "owed_by_insurer_jpy", "received_from_insurer_jpy",
                "instructed_jpy", "paid_jpy", "outstanding_jpy"])
    for s in r.sources:
        w.writerow(["by_source", _cell(s.source_id), s.allocated_jpy, "" if s.owed_jpy is None else s.owed_jpy,
                    "" if s.received_jpy is None else s.received_jpy, s.instructed_jpy, s.paid_jpy,
                    s.outstanding_jpy])
    w.writerow(["by_source", "total", r.allocated_jpy, "", "", r.instructed_jpy, r.paid_jpy, r.outstanding_jpy])
    w.writerow([])
    w.writerow(["section", "state", "claims", "total_jpy"])
    for line in r.claims_by_state:
        w.writerow(["claims_by_state", line.status, line.count, line.amount_jpy])
    w.writerow(["claims_by_state", "total", r.claims, r.total_claimed_jpy])
    w.writerow([])
    t = r.time_to_payment
    w.writerow(["section", "metric", "seconds", "days", "hours", "total_hours"])
    w.writerow(["time_to_payment", "customers_paid", t.paid, "", "", ""])
    w.writerow(["time_to_payment", "customers_unpaid", t.unpaid, "", "", ""])
    w.writerow(["time_to_payment", "customers_rejected_or_withdrawn", t.closed_unpaid, "", "", ""])
    for name, value in (("fastest", t.fastest), ("median", t.median), ("p90", t.p90), ("slowest", t.slowest)):
        _duration_row(w, name, value)
    w.writerow([])
    w.writerow(["section", "from_day", "to_day", "customers_paid"])
    for b in t.histogram:
        w.writerow(["histogram", b.start_day, "" if b.end_day is None else b.end_day, b.count])
    return out.getvalue()


@bp.get("/incidents/<ref>/report.csv")
@roles_required(BACK_OFFICE_READERS)
def incident_report_csv(ref: str):  # type: ignore[no-untyped-def]
    r = incident_report(db(), actor(), ref)
    name = secure_filename(r.incident.ref) or str(r.incident.id)
    return Response(report_csv(r), mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=incident-report-{name}.csv",
        "Cache-Control": "no-store"})
