"""Configuration from PAYOUTS_* environment variables, with safe defaults for development only.

Production (PAYOUTS_ENV=production) refuses to start with the development secret key or with
the embedded SQLite database, so a forgotten variable fails loudly instead of quietly.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

ENVIRONMENTS = ("development", "test", "production")
DEV_SECRET_KEY = "dev-only-not-secret"  # noqa: S105 - refused in production by Config.check()

class ConfigError(RuntimeError):
    """The environment does not describe a runnable deployment."""


#: The project root (where templates/ and migrations/ live in a checkout).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def resource_dir(name: str) -> Path:
    """templates/ or migrations/: in the checkout, or where a non-editable install put them."""
    for candidate in (PROJECT_ROOT / name, Path(sys.prefix) / "share" / "payouts" / name):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"cannot find the {name}/ directory of payouts (looked in {PROJECT_ROOT} and {sys.prefix})")


def instance_dir() -> Path:
    """Local state (the SQLite file, spooled uploads): in the checkout, else the working directory."""
    if "PAYOUTS_INSTANCE_DIR" in os.environ:
        return Path(os.environ["PAYOUTS_INSTANCE_DIR"])
    root = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").is_file() else Path.cwd()
    return root / "instance"


def _default_sqlite_url() -> str:
    return f"sqlite:///{instance_dir() / 'payouts.db'}"


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc


@dataclass(frozen=True)
class Config:
    """Everything the app, the CLI and the workers read from the environment."""

    env: str = "development"
    database_url: str = field(default_factory=_default_sqlite_url)
    redis_url: str | None = None
    secret_key: str = DEV_SECRET_KEY
    #: Login attempts allowed per client address (Flask-Limiter syntax).
    login_rate_limit: str = "10 per minute"
    #: Largest upload accepted, in bytes (loss files can be large).
    max_upload_bytes: int = 512 * 1024 * 1024
    #: Where uploaded files are kept while being processed: never under a web root.
    upload_dir: str = field(default_factory=lambda: str(instance_dir() / "uploads"))
    #: Cookie settings: secure cookies need HTTPS, which development on 127.0.0.1 lacks.
    secure_cookies: bool = False
    #: Reverse proxies in front of the app that set X-Forwarded-For (0: none).
    proxy_hops: int = 0
    #: Customers' evidence files: outside any web root, served only through access checks.
    evidence_dir: str = field(default_factory=lambda: str(instance_dir() / "evidence"))
    #: Claims above this many yen need two different people to approve them.
    four_eyes_threshold_jpy: int = 1_000_000
    #: The payment rail disbursements go through: "sandbox" (simulated bank) or "zengin" (files).
    rail: str = "sandbox"
    #: Loss files larger than this are imported by a worker (a job with a status), not in the request.
    import_job_bytes: int = 8 * 1024 * 1024
    #: Payments one disbursement job makes together.
    disbursement_batch_size: int = 1000
    #: The simulated bank's behaviour (sandbox rail): latency per call, failures per thousand.
    sandbox_latency_ms: int = 0
    sandbox_transient_per_mille: int = 0
    sandbox_rejection_per_mille: int = 0
    #: ... and how often the bank takes a batch but its answer is lost (a timeout), per thousand.
    sandbox_timeout_after_accept_per_mille: int = 0

    @classmethod
    def from_env(cls, **overrides: object) -> "Config":
        env = os.environ.get("PAYOUTS_ENV", "development")
        if env not in ENVIRONMENTS:
            # "prod" or "Production" must not quietly run with development settings.
            raise ConfigError(f"PAYOUTS_ENV must be one of {', '.join(ENVIRONMENTS)}; got {env!r}")
        values: dict[str, object] = {
            "env": env,
            "database_url": os.environ.get("PAYOUTS_DATABASE_URL") or _default_sqlite_url(),
            "redis_url": os.environ.get("PAYOUTS_REDIS_URL") or None,
            "secret_key": os.environ.get("PAYOUTS_SECRET_KEY") or DEV_SECRET_KEY,
            "login_rate_limit": os.environ.get("PAYOUTS_LOGIN_RATE_LIMIT", "10 per minute"),
            "max_upload_bytes": _int_env("PAYOUTS_MAX_UPLOAD_BYTES", cls.max_upload_bytes),
            "upload_dir": os.environ.get("PAYOUTS_UPLOAD_DIR")
            or str(instance_dir() / "uploads"),
            "proxy_hops": _int_env("PAYOUTS_PROXY_HOPS", 0),
            "evidence_dir": os.environ.get("PAYOUTS_EVIDENCE_DIR") or str(instance_dir() / "evidence"),
            "four_eyes_threshold_jpy": _int_env("PAYOUTS_FOUR_EYES_THRESHOLD_JPY", 1_000_000),
            "rail": os.environ.get("PAYOUTS_RAIL", "sandbox"),
            "disbursement_batch_size": _int_env("PAYOUTS_DISBURSEMENT_BATCH_SIZE", 1000),
            "import_job_bytes": _int_env("PAYOUTS_IMPORT_JOB_BYTES", 8 * 1024 * 1024),
            "sandbox_latency_ms": _int_env("PAYOUTS_SANDBOX_LATENCY_MS", 0),
            "sandbox_transient_per_mille": _int_env("PAYOUTS_SANDBOX_TRANSIENT_PER_MILLE", 0),
            "sandbox_rejection_per_mille": _int_env("PAYOUTS_SANDBOX_REJECTION_PER_MILLE", 0),
            "sandbox_timeout_after_accept_per_mille": _int_env("PAYOUTS_SANDBOX_TIMEOUT_AFTER_ACCEPT_PER_MILLE", 0),
            "secure_cookies": os.environ.get("PAYOUTS_SECURE_COOKIES", "1" if env == "production" else "0")
            == "1",
        }
        values.update(overrides)
        config = cls(**values)  # type: ignore[arg-type]
        config.check()
        return config

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def check(self) -> None:
        """Refuse configurations that are only safe on a developer's machine."""
        if self.env not in ENVIRONMENTS:
            raise ConfigError(f"environment must be one of {', '.join(ENVIRONMENTS)}; got {self.env!r}")
        if self.rail not in ("sandbox", "zengin"):
            raise ConfigError(f"PAYOUTS_RAIL must be sandbox or zengin; got {self.rail!r}")
        if self.four_eyes_threshold_jpy < 0:
            raise ConfigError("PAYOUTS_FOUR_EYES_THRESHOLD_JPY cannot be negative")
        if not 1 <= self.disbursement_batch_size <= 10_000:
            raise ConfigError("PAYOUTS_DISBURSEMENT_BATCH_SIZE must be between 1 and 10000")
        if not self.is_production:
            return
        if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32:
            raise ConfigError("PAYOUTS_SECRET_KEY must be set to a random value of 32+ characters in production")
        if self.database_url.startswith("sqlite"):
            raise ConfigError("PAYOUTS_DATABASE_URL must point at PostgreSQL in production")
        if not self.secure_cookies:
            raise ConfigError("PAYOUTS_SECURE_COOKIES cannot be off in production")
        if not self.redis_url:
            # Login rate limits kept in each worker's memory multiply by the worker count.
            raise ConfigError("PAYOUTS_REDIS_URL must be set in production (jobs and rate limits)")
