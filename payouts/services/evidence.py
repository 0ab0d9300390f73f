"""Evidence files customers send with a dispute: checked, stored outside the web root, and
served only to their owner and to staff (and read-only to regulators).

A file's type is decided by its content, never by its name or the browser's claim: only PDF,
PNG and JPEG are taken, each at most MAX_FILE_BYTES, at most MAX_FILES per dispute. Stored
under a random name, so nothing a customer types ever becomes part of a path.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from payouts.db.models import Claim, ClaimDispute, EvidenceFile
from payouts.domain.errors import NotFoundError, ValidationError
from payouts.domain.roles import BACK_OFFICE_READERS, Actor, Role
from payouts.services.access import require_role

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_FILES = 5
_CHUNK = 64 * 1024

#: Leading bytes that identify each accepted type.
_SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)


@dataclass(frozen=True)
class StoredEvidence:
    """A checked file already written to the evidence store, waiting to be attached."""

    original_name: str
    content_type: str
    byte_size: int
    sha256: str
    storage_name: str


def _clean_name(name: str) -> str:
    """A display name only (never a path): the last component, printable, at most 255 chars."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in unicodedata.normalize("NFC", base) if unicodedata.category(ch)[0] != "C")
    return base.strip()[:255] or "evidence"


def sniff(head: bytes) -> str | None:
    for signature, content_type in _SIGNATURES:
        if head.startswith(signature):
            return content_type
    return None


def store(directory: str | os.PathLike[str], filename: str, stream: BinaryIO, *, index: int = 0) -> StoredEvidence:
    """Check one uploaded file and write it to the store; ValidationError names the file."""
    field = f"evidence.{index}"
    name = _clean_name(filename)
    head = stream.read(16)
    content_type = sniff(head)
    if not head:
        raise ValidationError(field, f"{name}: the file is empty")
    if content_type is None:
        raise ValidationError(field, f"{name}: only PDF, PNG or JPEG files are accepted (by content, not name)")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    storage_name = secrets.token_hex(20)
    target = root / storage_name
    digest = hashlib.sha256(head)
    size = len(head)
    try:
        with open(target, "xb") as out:
            out.write(head)
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > MAX_FILE_BYTES:
                    raise ValidationError(field, f"{name}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
                digest.update(chunk)
                out.write(chunk)
        if content_type == "application/pdf" and b"%%EOF" not in _tail(target):
            raise ValidationError(field, f"{name}: not a complete PDF file")
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return StoredEvidence(name, content_type, size, digest.hexdigest(), storage_name)


def _tail(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 2048))
        return f.read()


def discard(directory: str | os.PathLike[str], stored: Iterable[StoredEvidence]) -> None:
    """Remove stored files whose dispute did not commit (nothing half-written stays behind)."""
    for item in stored:
        (Path(directory) / item.storage_name).unlink(missing_ok=True)


def attach(session: Session, actor: Actor, claim: Claim, dispute: ClaimDispute,
           stored: Iterable[StoredEvidence]) -> list[EvidenceFile]:
    """Record stored files against a dispute, inside the caller's transaction."""
    files = list(stored)
    if len(files) > MAX_FILES:
        raise ValidationError("evidence", f"at most {MAX_FILES} files per dispute")
    rows = [EvidenceFile(claim_id=claim.id, dispute_id=dispute.id, original_name=f.original_name,
                         content_type=f.content_type, byte_size=f.byte_size, sha256=f.sha256,
                         storage_name=f.storage_name, uploaded_by_id=actor.user_id) for f in files]
    session.add_all(rows)
    session.flush()
    return rows


def evidence_for_claim(session: Session, claim_id: int) -> list[EvidenceFile]:
    return list(session.scalars(select(EvidenceFile).where(EvidenceFile.claim_id == claim_id)
                                .order_by(EvidenceFile.id)))


def open_evidence(session: Session, actor: Actor, directory: str | os.PathLike[str],
                  file_id: int) -> tuple[EvidenceFile, Path]:
    """The file and where it lies, if the actor may read it: its owner, staff or a regulator.
    Anyone else is told it does not exist."""
    row = session.get(EvidenceFile, file_id)
    if row is None:
        raise NotFoundError(f"no evidence file #{file_id}")
    if actor.role is Role.CUSTOMER:
        from payouts.services.claims import customer_id_of

        owner = session.scalar(select(Claim.customer_id).where(Claim.id == row.claim_id))
        if owner != customer_id_of(session, actor):
            raise NotFoundError(f"no evidence file #{file_id}")
    else:
        require_role(actor, BACK_OFFICE_READERS, "read evidence")
    path = Path(directory) / row.storage_name
    if not path.is_file():
        raise NotFoundError(f"evidence file #{file_id} is missing from the store")
    return row, path
