"""Funding and allocation pages: from the seeded incident to a committed run in the browser's shoes."""

from __future__ import annotations

import pytest

import re

from payouts.domain.roles import Role
from tests.web.conftest import csrf_token


def post(client, url: str, data: dict, page: str | None = None):  # type: ignore[no-untyped-def]
    token = csrf_token(client.get(page or url.rsplit("/", 1)[0]).text)
    return client.post(url, data={"csrf_token": token, **data})


def test_reserve_policy_and_layer_through_the_forms(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    assert post(client, "/staff/funding/reserve", {"kind": "deposit", "amount_jpy": "9000000", "memo": "seed"},
                "/staff/funding").status_code == 302
    assert post(client, "/staff/funding/policies", {"policy_number": "P-9", "insurer": "Sompo Test",
                "period_start": "2026-01-01", "period_end": "2026-12-31"}, "/staff/funding").status_code == 302
    assert post(client, "/staff/funding/layers", {"policy_number": "P-9", "code": "L1", "attachment_jpy": "9000000",
                "limit_jpy": "5000000", "share": "0.5", "excluded_incident_types": ["insider_fraud"]},
                "/staff/funding").status_code == 302
    page = client.get("/staff/funding").text
    assert "JPY 9,000,000" in page and "L1" in page and "0.5" in page and "Insider fraud" in page


def test_withdrawal_beyond_available_is_shown_not_saved(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    response = post(client, "/staff/funding/reserve", {"kind": "withdrawal", "amount_jpy": "5", "memo": "x"},
                    "/staff/funding")
    assert response.status_code == 422
    assert "exceeds the available reserve" in response.text


@pytest.mark.usefixtures("approved_claims")
def test_from_terms_to_committed_run_and_a_customer_line(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.APPROVER)
    client.get("/lang/en")
    post(client, "/staff/funding/reserve", {"kind": "deposit", "amount_jpy": "8750000", "memo": "half"},
         "/staff/funding")
    assert post(client, "/staff/incidents/INC-1/terms", {"deductible_jpy": "0", "tranches_jpy": "1000000"},
                "/staff/incidents/INC-1/allocation").status_code == 302
    preview = client.get("/staff/incidents/INC-1/allocation")
    assert preview.status_code == 200
    # C1 5,000,000 and C2 12,500,000 eligible; 8,750,000 funded: tranche 1 pays 1,000,000 each,
    # the rest 6,750,000 shared pro rata over 4,000,000 and 11,500,000.
    assert "JPY 17,500,000" in preview.text and "JPY 8,750,000" in preview.text
    digest = re.search(r'name="digest" type="hidden" value="([0-9a-f]{64})"', preview.text).group(1)
    token = csrf_token(preview.text)
    committed = client.post("/staff/incidents/INC-1/allocation/commit", data={"csrf_token": token, "digest": digest})
    assert committed.status_code == 302
    run_page = client.get(committed.headers["Location"])
    assert "<h1>Run #1 (Initial allocation)</h1>" in run_page.text
    line = client.get(committed.headers["Location"] + "/customers/C1")
    assert line.status_code == 200
    # 1,000,000 + floor(6,750,000 * 4,000,000 / 15,500,000) = 2,741,935; the one leftover yen
    # goes to C2, whose fractional part (.516) beats C1's (.484).
    assert "<strong>JPY 2,741,935</strong>" in line.text
    assert "<strong>JPY 5,000,000</strong>" in line.text  # V, rounded once
    again = client.post("/staff/incidents/INC-1/allocation/commit", data={"csrf_token": token, "digest": digest})
    assert again.status_code == 302
    assert "already has a committed allocation" in client.get(again.headers["Location"]).text


@pytest.mark.usefixtures("approved_claims")
def test_stale_preview_is_refused(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    post(client, "/staff/funding/reserve", {"kind": "deposit", "amount_jpy": "1000", "memo": "a"}, "/staff/funding")
    preview = client.get("/staff/incidents/INC-1/allocation").text
    digest = re.search(r'name="digest" type="hidden" value="([0-9a-f]{64})"', preview).group(1)
    post(client, "/staff/funding/reserve", {"kind": "deposit", "amount_jpy": "1", "memo": "b"}, "/staff/funding")
    response = client.post("/staff/incidents/INC-1/allocation/commit",
                           data={"csrf_token": csrf_token(preview), "digest": digest})
    assert "changed since the preview" in client.get(response.headers["Location"]).text


@pytest.mark.usefixtures("approved_claims")
def test_regulator_sees_the_allocation_without_forms(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.REGULATOR)
    page = client.get("/staff/incidents/INC-1/allocation")
    assert page.status_code == 200
    assert "<form method=\"post\"" not in page.text.split("<main", 1)[1]
    funding_page = client.get("/staff/funding")
    assert funding_page.status_code == 200
    assert "<form method=\"post\"" not in funding_page.text.split("<main", 1)[1]


@pytest.mark.usefixtures("approved_claims")
def test_preview_line_spells_out_the_calculation_before_commit(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    post(client, "/staff/funding/reserve", {"kind": "deposit", "amount_jpy": "8750000", "memo": "half"},
         "/staff/funding")
    post(client, "/staff/incidents/INC-1/terms", {"deductible_jpy": "0", "tranches_jpy": "1000000"},
         "/staff/incidents/INC-1/allocation")
    line = client.get("/staff/incidents/INC-1/allocation/customers/C1")
    assert line.status_code == 200
    assert "nothing is stored until the allocation is committed" in line.text
    assert "<strong>JPY 2,741,935</strong>" in line.text
    assert client.get("/staff/incidents/INC-1/allocation/customers/NOBODY").status_code == 404


@pytest.mark.usefixtures("approved_claims")
def test_refusals_are_explained_not_crashed(client_for, app):  # type: ignore[no-untyped-def]
    """A frozen incident answers 409 with the reason; a missing price 422 with the reason."""
    import io

    from payouts.services import allocation
    from tests.conftest import STAFF

    client = client_for(Role.STAFF)
    client.get("/lang/en")
    session = app.extensions["payouts"].session_factory()
    allocation.commit_allocation(session, STAFF, "INC-1")
    session.close()
    token = csrf_token(client.get("/staff/incidents/INC-1").text)
    late = client.post("/staff/incidents/INC-1/imports", content_type="multipart/form-data", data={
        "csrf_token": token, "file": (io.BytesIO(b"customer_ref,asset,amount\nC9,BTC,1\n"), "late.csv")})
    assert late.status_code == 409 and "losses can no longer change" in late.text
    price = client.post("/staff/incidents/INC-1/prices",
                        data={"csrf_token": token, "asset": "BTC", "price": "2", "source": "s"})
    assert price.status_code == 409 and "reference prices can no longer change" in price.text
    assert client.get("/staff/incidents/INC-1/allocation/customers/C1").status_code == 409


@pytest.mark.usefixtures("approved_claims")
def test_a_large_incident_computes_its_preview_only_when_asked(client_for, monkeypatch):  # type: ignore[no-untyped-def]
    from payouts.web.staff import allocation_views

    monkeypatch.setattr(allocation_views, "PREVIEW_AUTO_LIMIT", 1)  # the seeded incident has 2
    client = client_for(Role.REGULATOR)
    client.get("/lang/en")
    page = client.get("/staff/incidents/INC-1/allocation").text
    assert "Compute the preview" in page and "Funding by source" not in page
    asked = client.get("/staff/incidents/INC-1/allocation", query_string={"preview": "1"}).text
    assert "Funding by source" in asked and "Compute the preview" not in asked
