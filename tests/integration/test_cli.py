"""The `payouts` console script, run as a user would run it (a subprocess per command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "payouts"
CASE = Path(__file__).resolve().parents[1] / "data" / "allocation_case_priority_tranches.json"


@pytest.fixture
def payouts(db_url, tmp_path):  # type: ignore[no-untyped-def]
    env = {**os.environ, "PAYOUTS_DATABASE_URL": db_url, "PAYOUTS_INSTANCE_DIR": str(tmp_path)}
    env.pop("PAYOUTS_REDIS_URL", None)

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SCRIPT), *args], env=env, input=stdin, capture_output=True, text=True,
                              timeout=120)

    return run


def test_incident_price_and_import_from_the_command_line(payouts, tmp_path):  # type: ignore[no-untyped-def]
    created = payouts("incidents", "create", "--ref", "CLI-1", "--title", "Hot wallet", "--type", "hack",
                      "--occurred", "2026-10-01T12:10+09:00", "--discovered", "2026-10-01T14:50+09:00")
    assert created.returncode == 0, created.stderr
    assert payouts("prices", "set", "CLI-1", "BTC", "14250000", "--source", "VWAP").returncode == 0
    good = tmp_path / "good.csv"
    good.write_text("customer_ref,asset,amount\nC1,BTC,0.5\nC2,BTC,1\n")
    imported = payouts("losses", "import", "CLI-1", str(good))
    assert imported.returncode == 0, imported.stderr
    assert "2 rows" in imported.stdout and "positions 2 created" in imported.stdout
    again = payouts("losses", "import", "CLI-1", str(good))
    assert again.returncode == 0 and "already imported" in again.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_ref,asset,amount\nC3,BTC,1\nC4,DOGE,1\n")
    rejected = payouts("losses", "import", "CLI-1", str(bad))
    assert rejected.returncode == 1
    assert "line 3: unknown asset 'DOGE'" in rejected.stderr
    listed = payouts("incidents", "list")
    assert "CLI-1" in listed.stdout and "2 customers" in listed.stdout


def test_refusals_exit_2_with_the_reason(payouts):  # type: ignore[no-untyped-def]
    result = payouts("prices", "set", "NOPE", "BTC", "1", "--source", "s")
    assert result.returncode == 2
    assert "no incident 'NOPE'" in result.stderr


def test_allocate_scenario_prints_the_result(payouts):  # type: ignore[no-untyped-def]
    case = json.loads(CASE.read_text())
    result = payouts("allocate-scenario", "-", stdin=json.dumps(case["inputs"]))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [c["payout_jpy"] for c in out["customers"]] == [c["payout_jpy"] for c in case["expected"]["customers"]]


def test_allocate_scenario_rejects_bad_input_with_one_line(payouts):  # type: ignore[no-untyped-def]
    case = json.loads(CASE.read_text())
    case["inputs"]["layers"][0]["share"] = "1.5"
    result = payouts("allocate-scenario", "-", stdin=json.dumps(case["inputs"]))
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "layers[0].share" in result.stderr
    broken = payouts("allocate-scenario", "-", stdin="{not json")
    assert broken.returncode == 2 and broken.stdout == ""
    assert len(broken.stderr.strip().splitlines()) == 1
