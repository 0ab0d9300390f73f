"""End-to-end fixtures: the app served on 127.0.0.1 and Debian's Chromium driven by Playwright.

The server is the real WSGI app (``create_app``) behind werkzeug's threaded server on a free
port, on a fresh migrated database from ``tests.conftest``. Users are seeded through the
services with random passwords. The browser is /usr/bin/chromium, never one downloaded by a
test tool; each test gets a new Chromium with a new, empty profile directory.

Without Chromium (or the Playwright library) these tests skip, or fail when
PAYOUTS_REQUIRE_SERVICES=1 (as CI sets it).
"""

from __future__ import annotations

import datetime as dt
import io
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from payouts.domain.roles import SYSTEM_ACTOR, Role
from payouts.services import incidents, loss_import, users
from tests.conftest import REQUIRE_SERVICES, STAFF, make_config

#: Playwright's assertions for the test modules (``from tests.e2e.conftest import expect``).
try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail in CI) with the reason
    expect = None  # type: ignore[assignment]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "e2e"
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}

#: The incident every test starts with; the customer lost BTC and ETH in it.
SEED_REF = "E2E-HACK-01"
SEED_TITLE = "Hot wallet drained"
CUSTOMER_REF = "C-E2E-1"
# The customer's total: 0.5 BTC at ¥10,000,000 plus 0.333333333333333333 ETH at ¥300,000.3
# (¥100,000.0999...), rounded down once: ¥5,100,000.


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (required here: PAYOUTS_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Any]:
    """Playwright's driver, once per session; skips or fails without Chromium."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is not installed (Debian package 'chromium'; `make browser`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright library is not installed (pip install -e '.[test]')")
    with sync_playwright() as driver:
        yield driver


@dataclass
class LiveServer:
    base_url: str
    #: role (or "customer") -> (username, password)
    accounts: dict[Role, tuple[str, str]] = field(default_factory=dict)
    #: The server's own session factory: for setup through the services (same database).
    session_factory: Callable[[], Any] | None = None

    def url(self, path: str) -> str:
        return self.base_url + path

    @contextmanager
    def db(self) -> Iterator[Any]:
        """A database session on the server's database, closed afterwards (setup and checks only:
        what a user does goes through the browser)."""
        assert self.session_factory is not None
        session = self.session_factory()
        try:
            yield session
        finally:
            session.close()

    def add_login(self, role: Role, username: str, *, customer_ref: str | None = None) -> tuple[str, str]:
        """One more login (e.g. a second member of staff for four-eyes): (username, password)."""
        password = secrets.token_urlsafe(16)
        with self.db() as session:
            users.create_user(session, SYSTEM_ACTOR, username=username, display_name=f"E2E {username}",
                              role=role, password=password, customer_ref=customer_ref)
        return username.strip().lower(), password


@pytest.fixture
def live_server(db_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    from payouts.web.app import create_app

    # Evidence files customers upload stay in the test's directory, not the checkout's instance/.
    app = create_app(make_config(db_url, tmp_path, evidence_dir=str(tmp_path / "evidence")))
    state = app.extensions["payouts"]
    session = state.session_factory()
    try:
        accounts = _seed(session)
    finally:
        session.close()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", accounts, state.session_factory)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        state.engine.dispose()


def _seed(session) -> dict[Role, tuple[str, str]]:  # type: ignore[no-untyped-def]
    """One incident with prices and a loss import, and a login for each role we drive."""
    occurred = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)
    incidents.record_incident(session, STAFF, ref=SEED_REF, title=SEED_TITLE, incident_type="hack",
                              occurred_at=occurred, discovered_at=occurred + dt.timedelta(hours=2))
    incidents.set_reference_price(session, STAFF, incident_ref=SEED_REF, asset_code="BTC",
                                  price="10000000", source="VWAP BTC/JPY 2026-01-05 00:00-09:00 JST")
    incidents.set_reference_price(session, STAFF, incident_ref=SEED_REF, asset_code="ETH",
                                  price="300000.3", source="VWAP ETH/JPY 2026-01-05 00:00-09:00 JST")
    data = (
        "customer_ref,asset,amount,name\n"
        f"{CUSTOMER_REF},BTC,0.5,Customer One\n"
        f"{CUSTOMER_REF},ETH,0.333333333333333333,Customer One\n"
        "C-E2E-2,BTC,1.25,Customer Two\n"
    ).encode()
    report = loss_import.import_losses(session, STAFF, SEED_REF, io.BytesIO(data), "seed.csv")
    assert report.status == "imported", report.problems

    accounts: dict[Role, tuple[str, str]] = {}
    for role in (Role.STAFF, Role.REGULATOR, Role.CUSTOMER):
        username, password = f"{role.value}@e2e.test", secrets.token_urlsafe(16)
        users.create_user(session, SYSTEM_ACTOR, username=username, display_name=f"E2E {role.value}",
                          role=role, password=password,
                          customer_ref=CUSTOMER_REF if role is Role.CUSTOMER else None)
        accounts[role] = (username, password)
    return accounts


@dataclass
class BrowserWatch:
    """What the page said that a user would not see: console errors (CSP), foreign requests."""

    base_url: str
    console_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def on_console(self, message: Any) -> None:
        # A 4xx page we navigate to on purpose (403, 422) is logged as a failed load: not a fault.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.console_errors.append(message.text)

    def on_request(self, request: Any) -> None:
        if not (request.url.startswith(self.base_url + "/") or request.url.startswith("data:")):
            self.foreign_requests.append(request.url)


@pytest.fixture
def open_browser(
    playwright_driver: Any, live_server: LiveServer, tmp_path: Path
) -> Iterator[Callable[..., Any]]:
    """open_browser(viewport=..., locale=...) -> a Page in a new Chromium with an empty profile."""
    contexts: list[Any] = []
    watches: list[BrowserWatch] = []

    def open_(viewport: dict[str, int] = DESKTOP, locale: str = "ja-JP") -> Any:
        profile = tmp_path / f"chromium-profile-{len(contexts)}"
        profile.mkdir()
        context = playwright_driver.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=viewport,
            locale=locale,
            base_url=live_server.base_url,
        )
        contexts.append(context)
        context.set_default_timeout(10_000)
        watch = BrowserWatch(live_server.base_url)
        watches.append(watch)
        context.on("console", watch.on_console)
        context.on("request", watch.on_request)
        page = context.pages[0] if context.pages else context.new_page()
        page.on("pageerror", lambda exc: watch.console_errors.append(f"page error: {exc}"))
        return page

    yield open_
    for context in contexts:
        context.close()
    for watch in watches:
        assert not watch.console_errors, f"browser console errors: {watch.console_errors}"
        assert not watch.foreign_requests, f"requests off the test server: {watch.foreign_requests}"


def add_approved_accounts(session: Any) -> None:
    """An approved payout account for each seeded customer (set-up; the caller commits)."""
    from sqlalchemy import select

    from payouts.db.models import Customer, PayoutDestination

    for number, ref in enumerate((CUSTOMER_REF, "C-E2E-2"), start=1):
        customer_id = session.scalar(select(Customer.id).where(Customer.external_ref == ref))
        session.add(PayoutDestination(
            customer_id=customer_id, bank_code="0005", branch_code="123", account_type="ordinary",
            account_number=f"123456{number}", holder_kana="ﾃｽﾄ ﾀﾛｳ", status="approved",
            approvals_required=1, submitted_by_label="e2e setup"))


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
