"""Staff pages: record an incident, fix a price, upload good and bad loss files."""

from __future__ import annotations

import io

from payouts.domain.roles import Role
from tests.web.conftest import csrf_token


def test_record_incident_through_the_form(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    token = csrf_token(client.get("/staff/incidents/new").text)
    response = client.post("/staff/incidents/new", data={
        "csrf_token": token, "ref": "2026-HACK-02", "title": "Cold wallet", "incident_type": "hack",
        "occurred_at": "2026-02-01T10:00", "discovered_at": "2026-02-01T12:30", "description": "d",
    })
    assert response.status_code == 302
    page = client.get(response.headers["Location"])
    assert "2026-HACK-02" in page.text and "2026-02-01 10:00 JST" in page.text


def test_invalid_incident_form_shows_the_error_next_to_the_field(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    token = csrf_token(client.get("/staff/incidents/new").text)
    response = client.post("/staff/incidents/new", data={
        "csrf_token": token, "ref": "INC-1", "title": "dup", "incident_type": "hack",
        "occurred_at": "2026-02-01T10:00", "discovered_at": "2026-02-01T09:00",
    })
    assert response.status_code == 422
    assert 'aria-invalid="true"' in response.text


def test_set_price_through_the_form(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.APPROVER)
    token = csrf_token(client.get("/staff/incidents/INC-1").text)
    response = client.post("/staff/incidents/INC-1/prices", data={
        "csrf_token": token, "asset": "ETH", "price": "512300.5", "source": "VWAP test"})
    assert response.status_code == 302
    assert "512,300.5" in client.get("/staff/incidents/INC-1").text


def test_bad_price_is_shown_not_saved(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    token = csrf_token(client.get("/staff/incidents/INC-1").text)
    response = client.post("/staff/incidents/INC-1/prices", data={
        "csrf_token": token, "asset": "ETH", "price": "-3", "source": "x"})
    assert response.status_code == 422
    assert "plain decimal" in response.text


def _upload(client, content: bytes, name: str = "losses.csv"):  # type: ignore[no-untyped-def]
    token = csrf_token(client.get("/staff/incidents/INC-1").text)
    return client.post("/staff/incidents/INC-1/imports", data={
        "csrf_token": token, "file": (io.BytesIO(content), name)}, content_type="multipart/form-data")


def test_upload_good_file_then_the_same_again(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    content = b"customer_ref,asset,amount\nC7,BTC,0.1\nC8,JPY,5000\n"
    first = _upload(client, content)
    assert first.status_code == 302
    page = client.get(first.headers["Location"])
    assert "<dt>Positions created</dt><dd>2</dd>" in page.text
    again = _upload(client, content, "copy.csv")
    assert again.status_code == 302 and again.headers["Location"] == first.headers["Location"]


def test_upload_bad_file_shows_the_report(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    response = _upload(client, b"customer_ref,asset,amount\nC7,BTC,0.1\nC8,DOGE,1\n")
    assert response.status_code == 422
    assert "line 3: unknown asset" in response.text


def test_upload_refuses_other_file_types(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    response = _upload(client, b"MZ\x90\x00", "tool.exe")
    assert response.status_code == 422


def test_form_fields_carry_only_meaningful_aria_attributes(client_for):  # type: ignore[no-untyped-def]
    page = client_for(Role.STAFF).get("/staff/incidents/new").text
    assert '="None"' not in page
    assert 'aria-describedby="ref-hint"' in page


def test_large_uploads_are_spooled_in_the_private_upload_directory(client_for, app, monkeypatch):  # type: ignore[no-untyped-def]
    import tempfile

    from payouts.web import uploads

    used_dirs = []
    real = tempfile.TemporaryFile

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        used_dirs.append(kwargs.get("dir"))
        return real(*args, **kwargs)

    monkeypatch.setattr(uploads.tempfile, "TemporaryFile", recording)
    rows = "".join(f"B{i:07d},JPY,{i}\n" for i in range(40_000))  # ~600 KB: beyond in-memory size
    response = _upload(client_for(Role.STAFF), ("customer_ref,asset,amount\n" + rows).encode())
    assert response.status_code == 302
    assert used_dirs == [app.extensions["payouts"].config.upload_dir]


def test_large_bodies_only_where_files_are_uploaded(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    token = csrf_token(client.get("/staff/incidents/new").text)
    big = {"csrf_token": token, "title": "x" * (3 * 1024 * 1024)}
    assert client.post("/staff/incidents/new", data=big).status_code == 413
    assert client.post("/login", data=big).status_code == 413


def test_only_users_who_may_upload_there_send_a_large_body(app, client_for, monkeypatch):  # type: ignore[no-untyped-def]
    """A large body is spooled to disk while it is parsed, before any view checks who sent it:
    the large cap is for a signed-in user of a role that may upload there, no one else."""
    from payouts.web import app as web_app

    def send(client, path: str, size: int) -> int:  # type: ignore[no-untyped-def]
        body = {"file": (io.BytesIO(b"x" * size), "big.csv")}
        return client.post(path, data=body, content_type="multipart/form-data").status_code

    three_mb = 3 * 1024 * 1024  # above the 2 MB every other request may send
    anonymous = app.test_client()
    for path in ("/staff/incidents/INC-1/imports", "/staff/adequacy/inputs/upload", "/portal/claims/1/dispute"):
        assert send(anonymous, path, three_mb) == 413, path
    for role in (Role.CUSTOMER, Role.REGULATOR):
        assert send(client_for(role), "/staff/incidents/INC-1/imports", three_mb) == 413, role
    rows = "".join(f"B{i:07d},JPY,{i}\n" for i in range(200_000))
    big = ("customer_ref,asset,amount\n" + rows).encode()
    assert len(big) > three_mb
    assert _upload(client_for(Role.STAFF), big).status_code == 302
    # A customer's dispute may carry its evidence files, and no more than they can be.
    monkeypatch.setattr(web_app, "DISPUTE_BODY_BYTES", 4 * 1024 * 1024)
    customer = client_for(Role.CUSTOMER)
    assert send(customer, "/portal/claims/1/dispute", three_mb) != 413
    assert send(customer, "/portal/claims/1/dispute", 5 * 1024 * 1024) == 413


def test_nul_characters_are_refused(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    token = csrf_token(client.get("/staff/incidents/INC-1").text)
    response = client.post("/staff/incidents/INC-1/prices",
                           data={"csrf_token": token, "asset": "BTC", "price": "1", "source": "bad\x00source"})
    assert response.status_code == 400
    assert client.get("/staff/audit", query_string={"actor": "a\x00b"}).status_code == 400


def test_a_large_loss_file_is_imported_by_a_job_the_page_follows(client_for, app):  # type: ignore[no-untyped-def]
    import dataclasses
    import io

    state = app.extensions["payouts"]
    state.config = dataclasses.replace(state.config, import_job_bytes=10)  # everything is "large"
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    token = csrf_token(client.get("/staff/incidents/INC-1").text)
    sent = client.post("/staff/incidents/INC-1/imports", content_type="multipart/form-data", data={
        "csrf_token": token, "file": (io.BytesIO(b"customer_ref,asset,amount\nC7,BTC,0.25\n"), "big.csv")})
    assert sent.status_code == 302 and "/import-jobs/" in sent.headers["Location"]
    page = client.get(sent.headers["Location"])  # no Redis: the job ran inline already
    assert page.status_code == 200 and "Imported: 1 rows." in page.text and 'http-equiv="refresh"' not in page.text
    assert client_for(Role.REGULATOR).get(sent.headers["Location"]).status_code == 200
    assert client_for(Role.CUSTOMER).get(sent.headers["Location"]).status_code == 403
