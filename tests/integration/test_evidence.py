"""Evidence files: checked by content, stored under random names, read by their owner and staff."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from payouts.db.models import AuditEvent, ClaimDispute, EvidenceFile
from payouts.domain.errors import NotFoundError, PermissionDenied, ValidationError
from payouts.services import claims, evidence
from tests.conftest import REGULATOR
from tests.integration.test_claims import Desk, audit_count

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(500) + b"\xff\xd9"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(2000)
ELF = b"\x7fELF\x02\x01\x01" + bytes(100)


def store(directory: Path, name: str, content: bytes, index: int = 0) -> evidence.StoredEvidence:
    return evidence.store(directory, name, io.BytesIO(content), index=index)


def empty(directory: Path) -> bool:
    return not directory.exists() or not any(directory.iterdir())


@pytest.mark.parametrize(("name", "content", "content_type"), [
    ("statement.pdf", PDF, "application/pdf"),
    ("screenshot.png", PNG, "image/png"),
    ("photo.jpg", JPEG, "image/jpeg"),
    ("photo.pdf", JPEG, "image/jpeg"),  # the content decides, not the name
    ("noextension", PNG, "image/png"),
])
def test_accepted_types_are_stored_as_sent(tmp_path, name, content, content_type):  # type: ignore[no-untyped-def]
    stored = store(tmp_path, name, content)
    assert (stored.original_name, stored.content_type, stored.byte_size) == (name, content_type, len(content))
    assert stored.sha256 == hashlib.sha256(content).hexdigest()
    assert len(stored.storage_name) == 40 and int(stored.storage_name, 16) >= 0
    assert [p.name for p in tmp_path.iterdir()] == [stored.storage_name]
    assert (tmp_path / stored.storage_name).read_bytes() == content


def test_a_file_name_never_becomes_a_path(tmp_path):  # type: ignore[no-untyped-def]
    stored = store(tmp_path / "store", "../../etc/cron.d/evil\x00\n.pdf", PDF)
    assert stored.original_name == "evil.pdf"
    assert store(tmp_path / "store", "C:\\Users\\me\\scan.png", PNG).original_name == "scan.png"
    assert store(tmp_path / "store", "", PNG).original_name == "evidence"
    assert {p.parent for p in (tmp_path / "store").iterdir()} == {tmp_path / "store"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("invoice.pdf", EXE, "only PDF, PNG or JPEG"),
    ("photo.png", ELF, "only PDF, PNG or JPEG"),
    ("page.pdf", b"<html><script>alert(1)</script></html>", "only PDF, PNG or JPEG"),
    ("empty.pdf", b"", "empty"),
    ("cut.pdf", PDF[:-7], "not a complete PDF"),
    ("cut.pdf", b"%PDF-1.4\n" + bytes(5000), "not a complete PDF"),
])
def test_refused_files_leave_nothing_behind(tmp_path, name, content, message):  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match=message) as error:
        store(tmp_path, name, content, index=3)
    assert error.value.field == "evidence.3"
    assert name in error.value.message
    assert empty(tmp_path)


def test_an_oversize_file_is_refused_and_removed(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(evidence, "MAX_FILE_BYTES", 1000)
    monkeypatch.setattr(evidence, "_CHUNK", 100)
    with pytest.raises(ValidationError, match="larger than") as error:
        store(tmp_path, "big.png", PNG[:1001])
    assert error.value.field == "evidence.0"
    assert empty(tmp_path)
    assert store(tmp_path, "fits.png", PNG[:1000]).byte_size == 1000


# --- attached to a dispute ------------------------------------------------------------------


@pytest.fixture
def desk(session) -> Desk:  # type: ignore[no-untyped-def]
    return Desk(session)


def dispute_with(desk: Desk, ref: str, files: list[evidence.StoredEvidence]) -> ClaimDispute:
    return claims.dispute_claim(desk.session, desk.customer(ref), desk.ids[ref], desk.rv(ref), reason="see attached",
                                corrected={"BTC": "0.2"}, evidence=files)


def test_evidence_attached_to_a_dispute_is_read_by_its_owner_and_staff_only(desk, tmp_path):  # type: ignore[no-untyped-def]
    files = [store(tmp_path, "statement.pdf", PDF), store(tmp_path, "shot.png", PNG, index=1)]
    dispute = dispute_with(desk, "C1", files)
    rows = evidence.evidence_for_claim(desk.session, desk.ids["C1"])
    assert [(r.original_name, r.content_type, r.dispute_id, r.uploaded_by_id) for r in rows] == [
        ("statement.pdf", "application/pdf", dispute.id, desk.customer("C1").user_id),
        ("shot.png", "image/png", dispute.id, desk.customer("C1").user_id)]
    event = desk.session.scalar(select(AuditEvent).where(AuditEvent.action == "claim.disputed"))
    assert json.loads(event.details)["evidence"] == [f.sha256 for f in files]

    for reader in (desk.customer("C1"), desk.staff1, desk.approver2, REGULATOR):
        row, path = evidence.open_evidence(desk.session, reader, tmp_path, rows[0].id)
        assert row.id == rows[0].id and path.read_bytes() == PDF
    with pytest.raises(NotFoundError):
        evidence.open_evidence(desk.session, desk.customer("C2"), tmp_path, rows[0].id)
    with pytest.raises(NotFoundError):
        evidence.open_evidence(desk.session, desk.customer("C1"), tmp_path, 999_999)
    (tmp_path / rows[1].storage_name).unlink()
    with pytest.raises(NotFoundError, match="missing from the store"):
        evidence.open_evidence(desk.session, desk.staff1, tmp_path, rows[1].id)


def test_too_many_files_refuse_the_whole_dispute(desk, tmp_path):  # type: ignore[no-untyped-def]
    files = [store(tmp_path, f"p{n}.png", PNG, index=n) for n in range(evidence.MAX_FILES + 1)]
    before = audit_count(desk.session)
    with pytest.raises(ValidationError) as error:
        dispute_with(desk, "C1", files)
    assert error.value.field == "evidence"
    assert audit_count(desk.session) == before
    assert desk.claim("C1").status == "open"
    assert desk.session.scalar(select(func.count()).select_from(ClaimDispute)) == 0
    assert desk.session.scalar(select(func.count()).select_from(EvidenceFile)) == 0
    evidence.discard(tmp_path, files)  # what the caller does when the dispute did not commit
    assert empty(tmp_path)


def test_a_refused_dispute_leaves_no_evidence_rows(desk, tmp_path):  # type: ignore[no-untyped-def]
    files = [store(tmp_path, "statement.pdf", PDF)]
    with pytest.raises(ValidationError):
        claims.dispute_claim(desk.session, desk.customer("C1"), desk.ids["C1"], desk.rv("C1"), reason="r",
                             corrected={"BTC": "-1"}, evidence=files)
    assert desk.session.scalar(select(func.count()).select_from(EvidenceFile)) == 0


def test_a_login_without_a_customer_cannot_read_evidence_as_a_customer(desk, tmp_path):  # type: ignore[no-untyped-def]
    dispute_with(desk, "C1", [store(tmp_path, "s.pdf", PDF)])
    row = evidence.evidence_for_claim(desk.session, desk.ids["C1"])[0]
    from payouts.domain.roles import Actor, Role

    with pytest.raises(PermissionDenied):
        evidence.open_evidence(desk.session, Actor("ghost", Role.CUSTOMER), tmp_path, row.id)
