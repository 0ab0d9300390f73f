"""Behaviour of /api/v1: the flow through the back office, idempotency, errors, no floats."""

from __future__ import annotations

import io
import threading
from typing import Any

from sqlalchemy import func, select

from payouts.db.models import AuditEvent, Incident
from payouts.domain.roles import Role

NEW_INCIDENT = {"ref": "INC-API-1", "title": "API incident", "incident_type": "hack",
                "occurred_at": "2026-01-05T09:00:00+09:00", "discovered_at": "2026-01-05T10:00:00+09:00"}


def _floats(value: Any, path: str = "$") -> list[str]:
    if isinstance(value, float):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _floats(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _floats(v, f"{path}[{i}]")]
    return []


def _count_incidents(app, ref: str) -> int:  # type: ignore[no-untyped-def]
    session = app.extensions["payouts"].session_factory()
    try:
        return int(session.scalar(select(func.count()).select_from(Incident).where(Incident.ref == ref)))
    finally:
        session.close()


def test_back_office_flow_through_the_api(api_app, call):  # type: ignore[no-untyped-def]
    from tests.conftest import STAFF
    from tests.helpers import approve_all_claims

    seen: list[Any] = []
    created = call(Role.STAFF, "POST", "/incidents", json=NEW_INCIDENT)
    assert created.status_code == 201, created.json
    seen.append(created.json)
    priced = call(Role.STAFF, "POST", "/incidents/INC-API-1/prices",
                  json={"asset": "BTC", "price": "10000000.5", "source": "VWAP"})
    assert priced.status_code == 200, priced.json
    assert priced.json["prices"][0]["price_jpy"] == "10000000.5"
    data = b"customer_ref,asset,amount,name\nA1,BTC,0.5,A One\nA2,BTC,1.25,A Two\n"
    upload = call(Role.STAFF, "POST", "/incidents/INC-API-1/loss-imports",
                  data={"file": (io.BytesIO(data), "losses.csv")}, content_type="multipart/form-data")
    assert upload.status_code == 201, upload.json
    assert upload.json["row_count"] == 2 and upload.json["outcome"] == "imported"
    again = call(Role.STAFF, "POST", "/incidents/INC-API-1/loss-imports",
                 data={"file": (io.BytesIO(data), "losses.csv")}, content_type="multipart/form-data")
    assert again.status_code == 200 and again.json["outcome"] == "already_imported"
    status = call(Role.REGULATOR, "GET", f"/incidents/INC-API-1/loss-imports/{upload.json['id']}")
    assert status.status_code == 200
    opened = call(Role.STAFF, "POST", "/incidents/INC-API-1/claims/open")
    assert opened.status_code == 200 and opened.json["opened"] == 2
    claims = call(Role.STAFF, "GET", "/claims?incident=INC-API-1&limit=1")
    assert len(claims.json["items"]) == 1 and claims.json["next"]
    rest = call(Role.STAFF, "GET", f"/claims?incident=INC-API-1&limit=1&after={claims.json['next']}")
    assert len(rest.json["items"]) == 1 and rest.json["next"] is None
    detail = call(Role.STAFF, "GET", f"/claims/{claims.json['items'][0]['id']}")
    assert detail.json["lines"][0]["amount"] == "0.5"
    seen += [claims.json, detail.json]

    session = api_app.extensions["payouts"].session_factory()
    approve_all_claims(session, STAFF, "INC-API-1")
    session.close()
    assert call(Role.STAFF, "GET", "/claims?incident=INC-API-1&state=approved").json["items"]

    preview = call(Role.STAFF, "GET", "/incidents/INC-API-1/allocation/preview")
    assert preview.status_code == 200, preview.json
    stale = call(Role.STAFF, "POST", "/incidents/INC-API-1/allocation-runs", json={"digest": "0" * 64})
    assert stale.status_code == 409 and stale.json["error"]["code"] == "conflict"
    run = call(Role.STAFF, "POST", "/incidents/INC-API-1/allocation-runs", json={"digest": preview.json["digest"]})
    assert run.status_code == 201, run.json
    lines = call(Role.REGULATOR, "GET", f"/incidents/INC-API-1/allocation-runs/{run.json['id']}/lines?limit=1")
    assert lines.status_code == 200 and lines.json["next"]
    payments = call(Role.STAFF, "GET", "/disbursements?incident=INC-API-1")
    recon = call(Role.STAFF, "GET", "/incidents/INC-API-1/reconciliation")
    report = call(Role.REGULATOR, "GET", "/incidents/INC-API-1/report")
    events = call(Role.REGULATOR, "GET", "/audit/events?actor=api-key:staff-key&limit=2")
    assert events.status_code == 200 and len(events.json["items"]) == 2 and events.json["next"]
    assert all(e["actor"] == "api-key:staff-key" for e in events.json["items"])
    more = call(Role.REGULATOR, "GET", f"/audit/events?actor=api-key:staff-key&after={events.json['next']}")
    assert more.json["items"][0]["seq"] < events.json["items"][-1]["seq"]
    for response in (preview, run, lines, payments, recon, report, events):
        assert response.status_code == 200 or response.status_code == 201, response.json
        seen.append(response.json)
    assert [p for body in seen for p in _floats(body)] == []


def test_api_writes_are_audited_with_the_key_as_actor(api_app, call):  # type: ignore[no-untyped-def]
    assert call(Role.APPROVER, "POST", "/incidents", json=NEW_INCIDENT).status_code == 201
    session = api_app.extensions["payouts"].session_factory()
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "incident.recorded")
                           .order_by(AuditEvent.seq.desc()).limit(1))
    session.close()
    assert event.actor == "api-key:approver-key" and event.actor_role == "approver"
    assert event.actor_user_id is None and event.subject_id == "INC-API-1"


def test_same_key_same_body_replays_the_first_response(api_app, call):  # type: ignore[no-untyped-def]
    headers = {"Idempotency-Key": "create-inc-api-1"}
    first = call(Role.STAFF, "POST", "/incidents", json=NEW_INCIDENT, headers=headers)
    second = call(Role.STAFF, "POST", "/incidents", json=NEW_INCIDENT, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json == first.json
    assert second.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert _count_incidents(api_app, "INC-API-1") == 1
    # Without the key the same body is a new request, refused by the service (ref exists).
    assert call(Role.STAFF, "POST", "/incidents", json=NEW_INCIDENT).status_code == 422


def test_same_key_different_body_is_refused(api_app, call):  # type: ignore[no-untyped-def]
    headers = {"Idempotency-Key": "k-1"}
    assert call(Role.STAFF, "POST", "/incidents", json=NEW_INCIDENT, headers=headers).status_code == 201
    other = call(Role.STAFF, "POST", "/incidents", json=NEW_INCIDENT | {"ref": "INC-API-2"}, headers=headers)
    assert other.status_code == 422
    assert other.json["error"]["code"] == "idempotency_key_reused"
    assert other.json["error"]["field"] == "Idempotency-Key"
    assert _count_incidents(api_app, "INC-API-2") == 0


def test_keys_are_per_api_key_and_refusals_are_replayed_too(api_app, call):  # type: ignore[no-untyped-def]
    headers = {"Idempotency-Key": "shared-name"}
    bad = NEW_INCIDENT | {"occurred_at": "2999-01-01T00:00:00+00:00"}
    first = call(Role.STAFF, "POST", "/incidents", json=bad, headers=headers)
    assert first.status_code == 422 and first.json["error"]["field"] == "occurred_at"
    replay = call(Role.STAFF, "POST", "/incidents", json=bad, headers=headers)
    assert replay.status_code == 422 and replay.headers["Idempotent-Replayed"] == "true"
    # Another key's "shared-name" is its own.
    assert call(Role.ADMIN, "POST", "/incidents", json=NEW_INCIDENT, headers=headers).status_code == 201


def test_concurrent_duplicates_execute_once(api_app, keys):  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(4)
    results: list[tuple[int, dict[str, Any]]] = []

    def post() -> None:
        client = api_app.test_client()
        barrier.wait()
        response = client.post("/api/v1/incidents", json=NEW_INCIDENT,
                               headers={"Authorization": f"Bearer {keys[Role.STAFF]}", "Idempotency-Key": "race"})
        results.append((response.status_code, response.json))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _count_incidents(api_app, "INC-API-1") == 1
    codes = sorted(code for code, _ in results)
    assert set(codes) <= {201, 409}, results
    assert 201 in codes
    for code, body in results:
        if code == 409:
            assert body["error"]["code"] == "idempotency_in_progress"


def test_errors_have_one_shape_naming_the_field(api_app, call):  # type: ignore[no-untyped-def]
    cases = [
        (call(Role.STAFF, "POST", "/incidents", json={"title": "x"}), 422, "validation_error"),
        (call(Role.STAFF, "POST", "/incidents", json=NEW_INCIDENT | {"incident_type": "meteor"}), 422,
         "validation_error"),
        (call(Role.STAFF, "GET", "/claims?limit=0"), 422, "validation_error"),
        (call(Role.STAFF, "GET", "/claims?after=garbage"), 400, "validation_error"),
        (call(Role.STAFF, "GET", "/incidents/NOPE"), 404, "not_found"),
        (call(Role.STAFF, "GET", "/no-such-thing"), 404, "not_found"),
        (call(Role.STAFF, "DELETE", "/incidents"), 405, "method_not_allowed"),
        (call(Role.STAFF, "POST", "/incidents/INC-1/prices", json={"asset": "BTC", "price": "-1", "source": "s"}),
         422, "validation_error"),
        (call(Role.STAFF, "POST", "/incidents/INC-1/prices", json={"asset": "BTC", "price": 1.5, "source": "s"}),
         422, "validation_error"),
        (call(Role.STAFF, "POST", "/incidents", json=NEW_INCIDENT, headers={"Idempotency-Key": ""}), 400,
         "validation_error"),
        (call(Role.REGULATOR, "POST", "/incidents", json=NEW_INCIDENT), 403, "forbidden"),
        (call("none", "GET", "/incidents"), 401, "unauthorized"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, (response.request.path, response.json)
        assert set(response.json) == {"error"}
        assert response.json["error"]["code"] == code
        assert isinstance(response.json["error"]["message"], str) and response.json["error"]["message"]
    assert cases[0][0].json["error"]["field"] in ("ref", "incident_type", "occurred_at", "discovered_at")
    assert cases[2][0].json["error"]["field"] == "limit"
    assert cases[3][0].json["error"]["field"] == "after"
    assert cases[7][0].json["error"]["field"] == "price"
    assert cases[8][0].json["error"]["field"] == "price"


def test_rejected_loss_file_names_the_problem(api_app, call):  # type: ignore[no-untyped-def]
    assert call(Role.STAFF, "POST", "/incidents", json=NEW_INCIDENT).status_code == 201
    bad = call(Role.STAFF, "POST", "/incidents/INC-API-1/loss-imports",
               data={"file": (io.BytesIO(b"customer_ref,asset,amount\nA1,BTC,-3\n"), "bad.csv")},
               content_type="multipart/form-data")
    assert bad.status_code == 422 and bad.json["error"]["code"] == "loss_file_rejected"
    assert bad.json["error"]["field"] == "file"


def test_rate_limit_is_per_key(api_app, call):  # type: ignore[no-untyped-def]
    api_app.config["PAYOUTS_API_RATE_LIMIT"] = "3 per minute"
    for _ in range(3):
        assert call(Role.STAFF, "GET", "/incidents").status_code == 200
    limited = call(Role.STAFF, "GET", "/incidents")
    assert limited.status_code == 429, limited.text
    assert limited.json["error"]["code"] == "rate_limited", (limited.headers, limited.text)
    assert call(Role.ADMIN, "GET", "/incidents").status_code == 200  # another key, another bucket


def test_made_up_keys_share_one_limit_per_address(api_app, call):  # type: ignore[no-untyped-def]
    import secrets

    api_app.config["PAYOUTS_API_RATE_LIMIT"] = "3 per minute"
    for _ in range(3):
        assert call(secrets.token_urlsafe(32), "GET", "/incidents").status_code == 401
    guessed = call(secrets.token_urlsafe(32), "GET", "/incidents")
    assert guessed.status_code == 429 and guessed.json["error"]["code"] == "rate_limited"
    assert call(Role.STAFF, "GET", "/incidents").status_code == 200  # a live key keeps its own limit


def test_document_and_its_page(api_app):  # type: ignore[no-untyped-def]
    client = api_app.test_client()
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/incidents" in spec["paths"] and "post" in spec["paths"]["/api/v1/incidents"]
    post = spec["paths"]["/api/v1/incidents"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and "/api/v1/incidents/{ref}/allocation-runs" in page.text
    assert "<script" not in page.text  # nothing loaded from a CDN


def test_insurer_payment_instructs_the_layer_once_received_in_full(api_app, call):  # type: ignore[no-untyped-def]
    import datetime as dt

    from payouts.services import allocation, funding
    from tests.conftest import STAFF
    from tests.helpers import approve_all_claims

    session = api_app.extensions["payouts"].session_factory()
    # INC-1: C1 5,000,000 and C2 12,500,000 yen; the reserve pays 1,000,000, layer L1 the rest.
    funding.record_reserve_movement(session, STAFF, kind="deposit", amount_jpy=1_000_000, memo="cash")
    funding.create_policy(session, STAFF, policy_number="P-API", insurer="API Re", period_start=dt.date(2025, 1, 1),
                          period_end=dt.date(2027, 12, 31))
    funding.add_layer(session, STAFF, policy_number="P-API", code="L1", attachment_jpy=0, limit_jpy=10**9,
                      share="1", aggregate_limit_jpy=None, excluded_incident_types=[])
    approve_all_claims(session, STAFF, "INC-1")
    allocation.commit_allocation(session, STAFF, "INC-1")
    session.close()
    owed = next(s for s in call(Role.STAFF, "GET", "/incidents/INC-1/reconciliation").json["sources"]
                if s["source_id"] == "L1")
    assert owed["awaiting_funds_jpy"] == 16_500_000 and owed["instructed_jpy"] == 0
    part = call(Role.STAFF, "POST", "/incidents/INC-1/insurer-payments", json={"layer": "L1", "amount_jpy": 500_000})
    assert part.status_code == 200 and part.json == {"incident": "INC-1", "layer": "L1", "amount_jpy": 16_500_000,
                                                     "received_jpy": 500_000, "instructed": False}
    too_much = call(Role.STAFF, "POST", "/incidents/INC-1/insurer-payments",
                    json={"layer": "L1", "amount_jpy": 16_000_001})
    assert too_much.status_code == 422 and too_much.json["error"]["field"] == "amount_jpy"
    rest = call(Role.STAFF, "POST", "/incidents/INC-1/insurer-payments", json={"layer": "L1", "amount_jpy": 16_000_000})
    assert rest.json["instructed"] is True
    recon = call(Role.STAFF, "GET", "/incidents/INC-1/reconciliation").json
    layer = next(s for s in recon["sources"] if s["source_id"] == "L1")
    assert layer["instructed_jpy"] == 16_500_000 and layer["awaiting_funds_jpy"] == 0 and recon["balanced"]
    assert call(Role.REGULATOR, "POST", "/incidents/INC-1/insurer-payments",
                json={"layer": "L1", "amount_jpy": 1}).status_code == 403


def test_reserve_adequacy_inputs_and_requirement_through_the_api(api_app, call):  # type: ignore[no-untyped-def]
    import datetime as dt

    from payouts.services import adequacy, funding
    from tests.conftest import STAFF

    today = dt.date.today()
    last_month = (today.replace(day=1) - dt.timedelta(days=1))
    yesterday, a_while_ago = (today - dt.timedelta(days=1)).isoformat(), (today - dt.timedelta(days=300)).isoformat()
    assert call(Role.STAFF, "GET", "/adequacy/requirement").status_code == 404  # no rule yet
    volume = call(Role.STAFF, "POST", "/adequacy/trading-volumes",
                  json={"month": last_month.isoformat(), "market": "spot", "volume_jpy": 1_000_000_000})
    assert volume.status_code == 200 and volume.json["month"] == last_month.replace(day=1).isoformat()
    negative = call(Role.STAFF, "POST", "/adequacy/trading-volumes",
                    json={"month": "2026-10-01", "market": "spot", "volume_jpy": -1})
    assert negative.status_code == 422 and negative.json["error"]["field"] == "volume_jpy"
    wrong = call(Role.STAFF, "POST", "/adequacy/wallet-snapshots",
                 json={"as_of": "2026-10-31", "wallet": "warm", "value_jpy": 5})
    assert wrong.status_code == 422 and wrong.json["error"]["field"] == "wallet"
    for wallet, value in (("cold", 100_000_000_000), ("hot", 4_000_000_000)):
        assert call(Role.STAFF, "POST", "/adequacy/wallet-snapshots",
                    json={"as_of": yesterday, "wallet": wallet, "value_jpy": value}).status_code == 200
    past = call(Role.STAFF, "POST", "/adequacy/incident-history",
                json={"occurred_on": a_while_ago, "loss_jpy": 300_000_000, "description": "deposit wallet leak"})
    assert past.status_code == 200
    page = call(Role.REGULATOR, "GET", "/adequacy/wallet-snapshots?limit=1")
    assert len(page.json["items"]) == 1 and page.json["next"]

    session = api_app.extensions["payouts"].session_factory()
    adequacy.set_rule(session, STAFF, effective_from=dt.date(2025, 4, 1), illustrative=True, rationale="test", params={
        "volume_rates": [{"market": "*", "rate": "0.001"}], "cold_wallet_rate": "0.01", "hot_wallet_rate": "0.05",
        "incident_multiple": "1", "incident_lookback_years": 3, "floor_jpy": 0, "cap_jpy": None,
        "insurance_credit_ratio": "1", "insurance_max_share": "0.5", "qualifying_policies": None})
    funding.record_reserve_movement(session, STAFF, kind="deposit", amount_jpy=2_000_000_000, memo="cash")
    session.close()
    past_day = call(Role.REGULATOR, "GET", f"/adequacy/requirement?as_of={yesterday}").json
    assert past_day["reserve_balance_jpy"] == 0  # the deposit came later: a past verdict stays as it was
    req = call(Role.REGULATOR, "GET", "/adequacy/requirement")
    assert req.status_code == 200, req.json
    body = req.json
    # 0.1% of 1bn volume + 1% of 100bn cold + 5% of 4bn hot + 1 x 300m of past losses.
    assert body["volume_part_jpy"] == 1_000_000 and body["holdings_part_jpy"] == 1_200_000_000
    assert body["incident_part_jpy"] == 300_000_000 and body["sum_jpy"] == 1_501_000_000
    assert body["cash_requirement_jpy"] == 1_501_000_000 and body["surplus_jpy"] == 499_000_000 and body["met"]
    assert [p for p in _floats(body)] == []


def test_a_large_loss_file_is_imported_by_a_job_with_a_status_to_follow(api_app, call):  # type: ignore[no-untyped-def]
    call(Role.STAFF, "POST", "/incidents", json=NEW_INCIDENT)
    data = b"customer_ref,asset,amount\nJ1,BTC,0.5\nJ2,BTC,1\n"
    queued = call(Role.STAFF, "POST", "/incidents/INC-API-1/loss-imports?mode=job",
                  data={"file": (io.BytesIO(data), "big.csv")}, content_type="multipart/form-data")
    assert queued.status_code == 202, queued.json
    assert queued.json["filename"] == "big.csv" and queued.json["byte_size"] == len(data)
    job = call(Role.REGULATOR, "GET", f"/incidents/INC-API-1/import-jobs/{queued.json['id']}").json
    # Without Redis the job ran inline; with workers it would be "queued" or "running" first.
    assert job["status"] == "done" and job["outcome"] == "imported" and job["rows"] == 2
    assert call(Role.STAFF, "GET", f"/incidents/INC-API-1/loss-imports/{job['import_id']}").status_code == 200
    bad = call(Role.STAFF, "POST", "/incidents/INC-API-1/loss-imports?mode=job",
               data={"file": (io.BytesIO(b"customer_ref,asset,amount\nJ3,BTC,-1\n"), "bad.csv")},
               content_type="multipart/form-data")
    failed = call(Role.STAFF, "GET", f"/incidents/INC-API-1/import-jobs/{bad.json['id']}").json
    assert failed["outcome"] == "rejected" and failed["import_id"] is None
    assert failed["problem_count"] == 1 and "line 2" in failed["problems"][0]
    assert call(Role.STAFF, "GET", "/incidents/INC-API-1/import-jobs/999").status_code == 404


def test_a_nul_character_anywhere_in_a_body_is_refused_naming_the_field(api_app, call):  # type: ignore[no-untyped-def]
    body = {**NEW_INCIDENT, "title": "bad\u0000title"}
    refused = call(Role.STAFF, "POST", "/incidents", json=body)
    assert refused.status_code == 400 and refused.json["error"]["field"] == "title"
    assert "NUL" in refused.json["error"]["message"]
    assert call(Role.STAFF, "GET", "/incidents/INC-API-1").status_code == 404  # nothing written


def test_a_nul_character_in_the_path_is_a_clear_refusal(api_app, call):  # type: ignore[no-untyped-def]
    refused = call(Role.STAFF, "GET", "/incidents/INC%00-1")
    assert refused.status_code == 400 and refused.json["error"]["code"] == "bad_request"


def test_only_a_key_that_may_import_sends_a_large_loss_file(api_app, call):  # type: ignore[no-untyped-def]
    """The large cap is for a valid key that may import; anyone else's large body is refused
    before it is read (and so before it is spooled to disk)."""
    assert call(Role.STAFF, "POST", "/incidents", json=NEW_INCIDENT).status_code == 201
    rows = "".join(f"B{i:07d},JPY,{i}\n" for i in range(200_000)).encode()  # ~3 MB: above the small cap
    big = b"customer_ref,asset,amount\n" + rows

    def upload(role):  # type: ignore[no-untyped-def]
        return call(role, "POST", "/incidents/INC-API-1/loss-imports", content_type="multipart/form-data",
                    data={"file": (io.BytesIO(big), "big.csv"), "mode": "job"})

    assert len(big) > 2 * 1024 * 1024
    for role in ("none", "not-a-key", Role.REGULATOR):
        assert upload(role).status_code == 413, role
    assert upload(Role.STAFF).status_code in (200, 201, 202)
