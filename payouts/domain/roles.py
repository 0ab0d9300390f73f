"""Roles and what each may do. The server checks these on every route and in every service.

An approver is a member of staff who may also give the second approval; an admin manages users
and configuration; a regulator reads everything and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Role(str, Enum):
    CUSTOMER = "customer"
    STAFF = "staff"
    APPROVER = "approver"
    ADMIN = "admin"
    REGULATOR = "regulator"


#: Who may change incident records, prices and losses.
STAFF_WRITERS = frozenset({Role.STAFF, Role.APPROVER, Role.ADMIN})
#: Who may read the back office (regulators read, never write).
BACK_OFFICE_READERS = STAFF_WRITERS | {Role.REGULATOR}


@dataclass(frozen=True)
class Actor:
    """Who is acting, as recorded in audit events: a user, the CLI operator or a job."""

    label: str
    role: Role
    user_id: int | None = None
    request_id: str | None = None
    #: A customer login's customer, as loaded with the login (saves a query per request).
    customer_id: int | None = None


SYSTEM_ACTOR = Actor(label="system", role=Role.ADMIN)
