"""Dispatch: inline without Redis (the embedded default), through RQ with Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from payouts.config import Config
from payouts.jobs.runtime import make_dispatch
from tests.conftest import REDIS_URL, need_service


def touch(path: str, text: str) -> None:
    """A job for the test: carries plain values only, as real jobs carry ids."""
    Path(path).write_text(text)


def test_inline_dispatch_runs_the_job_at_once(tmp_path):  # type: ignore[no-untyped-def]
    dispatch = make_dispatch(Config(redis_url=None))
    dispatch("tests.integration.test_jobs_runtime.touch", str(tmp_path / "done"), "inline")
    assert (tmp_path / "done").read_text() == "inline"


@pytest.mark.redis
def test_rq_dispatch_is_run_by_a_worker(tmp_path):  # type: ignore[no-untyped-def]
    from redis import Redis
    from rq import Queue, SimpleWorker

    url = need_service("Redis (PAYOUTS_TEST_REDIS_URL)", REDIS_URL)
    queue_name = f"payouts-test-{tmp_path.name}"
    dispatch = make_dispatch(Config(redis_url=url), queue=queue_name)
    dispatch("tests.integration.test_jobs_runtime.touch", str(tmp_path / "done"), "queued")
    assert not (tmp_path / "done").exists()  # enqueued, not run
    connection = Redis.from_url(url)
    queue = Queue(queue_name, connection=connection)
    assert queue.count == 1
    SimpleWorker([queue], connection=connection).work(burst=True)
    assert (tmp_path / "done").read_text() == "queued"
    queue.delete(delete_jobs=True)
