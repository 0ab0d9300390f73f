"""Shared fixtures: a migrated database per test (SQLite by default, PostgreSQL when
PAYOUTS_TEST_DATABASE_URL is set), the Flask app and logged-in clients for each role.

With PAYOUTS_REQUIRE_SERVICES=1 (set by .ci/run) a test that needs PostgreSQL or Redis fails
instead of skipping when the service is missing.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from payouts.config import Config
from payouts.db.migrate import upgrade
from payouts.db.session import make_engine, make_session_factory, normalise_url
from payouts.domain.roles import Actor, Role

PG_URL = os.environ.get("PAYOUTS_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("PAYOUTS_TEST_REDIS_URL")
REQUIRE_SERVICES = os.environ.get("PAYOUTS_REQUIRE_SERVICES") == "1"

STAFF = Actor(label="staff@test", role=Role.STAFF)
REGULATOR = Actor(label="regulator@test", role=Role.REGULATOR)


def need_service(name: str, url: str | None) -> str:
    if url:
        return url
    if REQUIRE_SERVICES:
        pytest.fail(f"{name} is required here (PAYOUTS_REQUIRE_SERVICES=1) but its URL is not set")
    pytest.skip(f"{name} not configured")


class Database:
    """Hands out fresh, fully migrated databases cloned from one migrated template."""

    def __init__(self, tmp: Path, pg_url: str | None) -> None:
        self.pg_url = pg_url
        self.tmp = tmp
        self.dialect = "postgresql" if pg_url else "sqlite"
        if pg_url:
            url = make_url(normalise_url(pg_url))
            self._admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
            self._base = url
            self.template = f"payouts_tpl_{uuid.uuid4().hex[:10]}"
            self._clones: list[str] = []
            with self._admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.template}"'))
            engine = make_engine(url.set(database=self.template).render_as_string(False))
            upgrade(engine)
            engine.dispose()
        else:
            self.template_file = tmp / "template.db"
            engine = make_engine(f"sqlite:///{self.template_file}")
            upgrade(engine)
            raw = engine.raw_connection()  # outside any transaction, or the checkpoint cannot run
            try:
                raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                raw.close()
            engine.dispose()

    def new_url(self) -> str:
        if self.pg_url:
            name = f"payouts_t_{uuid.uuid4().hex[:12]}"
            with self._admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
            self._clones.append(name)
            return self._base.set(database=name).render_as_string(hide_password=False)
        target = self.tmp / f"{uuid.uuid4().hex}.db"
        shutil.copyfile(self.template_file, target)
        return f"sqlite:///{target}"

    def close(self) -> None:
        if self.pg_url:
            with self._admin.connect() as conn:
                for name in [*self._clones, self.template]:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            self._admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    dbs = Database(tmp_path_factory.mktemp("db"), PG_URL)
    yield dbs
    dbs.close()


@pytest.fixture
def db_url(databases: Database) -> str:
    return databases.new_url()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    s = make_session_factory(engine)()
    yield s
    s.close()


@pytest.fixture
def pg_engine(databases: Database) -> Iterator[Engine]:
    """A PostgreSQL database: for proofs that SQLite cannot give (locks, triggers)."""
    if databases.dialect != "postgresql":
        need_service("PostgreSQL (PAYOUTS_TEST_DATABASE_URL)", None)
    eng = make_engine(databases.new_url())
    yield eng
    eng.dispose()


def make_config(db_url: str, tmp_path: Path, **overrides: object) -> Config:
    values: dict[str, object] = {
        "env": "test",
        "database_url": db_url,
        "secret_key": "test-secret-key-" + uuid.uuid4().hex,
        "login_rate_limit": "1000 per minute",
        "upload_dir": str(tmp_path / "uploads"),
    }
    values.update(overrides)
    return Config(**values)  # type: ignore[arg-type]


@pytest.fixture
def app(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    from payouts.web.app import create_app

    application = create_app(make_config(db_url, tmp_path))
    application.config["TESTING"] = True
    yield application
    application.extensions["payouts"].engine.dispose()


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """Still argon2id, with the cheapest parameters: tests create many logins."""
    from argon2 import PasswordHasher, profiles

    from payouts.services import users

    original = users._hasher
    users._hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)
    yield
    users._hasher = original
