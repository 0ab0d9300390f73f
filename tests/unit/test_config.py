"""Production refuses development-only settings."""

from __future__ import annotations

import pytest

from payouts.config import DEV_SECRET_KEY, Config, ConfigError

PG = "postgresql://payouts@db/payouts"
GOOD_SECRET = "x" * 40


def test_development_defaults_are_accepted():
    Config().check()


@pytest.mark.parametrize("overrides, message", [
    ({"secret_key": DEV_SECRET_KEY, "database_url": PG}, "SECRET_KEY"),
    ({"secret_key": "short", "database_url": PG}, "SECRET_KEY"),
    ({"secret_key": GOOD_SECRET, "database_url": "sqlite:///x.db"}, "PostgreSQL"),
    ({"secret_key": GOOD_SECRET, "database_url": PG, "secure_cookies": False}, "COOKIES"),
    ({"secret_key": GOOD_SECRET, "database_url": PG, "redis_url": None}, "REDIS_URL"),
])
def test_production_refuses_unsafe_settings(overrides, message):  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message):
        Config(env="production", **{"secure_cookies": True, "redis_url": "redis://r", **overrides}).check()


def test_from_env_reads_the_prefix(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAYOUTS_ENV", "production")
    monkeypatch.setenv("PAYOUTS_SECRET_KEY", GOOD_SECRET)
    monkeypatch.setenv("PAYOUTS_DATABASE_URL", PG)
    monkeypatch.setenv("PAYOUTS_REDIS_URL", "redis://cache:6379/0")
    config = Config.from_env()
    assert (config.database_url, config.redis_url, config.secure_cookies) == (PG, "redis://cache:6379/0", True)
    monkeypatch.setenv("PAYOUTS_SECRET_KEY", "")
    with pytest.raises(ConfigError):
        Config.from_env()


@pytest.mark.parametrize("env", ["prod", "Production", "staging", ""])
def test_unknown_environment_names_are_refused(monkeypatch, env):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAYOUTS_ENV", env)
    with pytest.raises(ConfigError, match="PAYOUTS_ENV"):
        Config.from_env()
