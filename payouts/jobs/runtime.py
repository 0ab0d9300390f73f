"""The bridge between services and RQ: how work is dispatched, and how a worker runs.

Services never import RQ; they are handed a ``dispatch(func_path, *ids)`` callable and call it
only after their transaction has committed. With Redis configured, dispatch enqueues on RQ;
without it (the embedded default used by `make run`), the job runs inline in the same process.
Jobs carry ids only and re-read state, because RQ may deliver a job more than once.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from redis import Redis
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from payouts.config import Config

QUEUES = ("payouts-high", "payouts-default")
Dispatch = Callable[..., None]

# The worker process's state, set up once by run_worker() before any job runs.
_worker_state: dict[str, Any] = {}
# Inline jobs (no Redis) run inside the caller's process with the caller's database.
_inline_state: ContextVar[dict[str, Any] | None] = ContextVar("payouts_inline_job_state", default=None)


def make_dispatch(config: Config, queue: str = "payouts-default", *, engine: Any = None,
                  session_factory: Any = None) -> Dispatch:
    """A dispatch callable for this deployment: RQ when Redis is configured, inline otherwise.

    Inline jobs use ``engine`` and ``session_factory`` (the app's or the CLI's), so they see
    the same database as the request that dispatched them."""
    if config.redis_url:
        rq_queue = Queue(queue, connection=Redis.from_url(config.redis_url))

        def enqueue(func_path: str, *args: object, job_id: str | None = None) -> None:
            # A job with this id still waiting in the queue will do the work: a sweep that
            # re-dispatches a backlog must not double the queue. A started job may belong to a
            # dead worker, so it is enqueued again (running twice is safe; never running is not).
            if job_id is not None:
                try:
                    if Job.fetch(job_id, connection=rq_queue.connection).get_status() == JobStatus.QUEUED:
                        return
                except NoSuchJobError:
                    pass
            rq_queue.enqueue(func_path, *args, job_id=job_id)

        return enqueue

    def inline(func_path: str, *args: object, job_id: str | None = None) -> None:
        module, _, name = func_path.rpartition(".")
        state = {"config": config, "engine": engine, "session_factory": session_factory}
        token = _inline_state.set(state if session_factory is not None else None)
        try:
            getattr(importlib.import_module(module), name)(*args)
        finally:
            _inline_state.reset(token)

    return inline


def job_state() -> dict[str, Any]:
    """config, engine and session_factory for the running job (inline or in a worker)."""
    inline = _inline_state.get()
    if inline is not None:
        return inline
    worker_session_factory()
    return _worker_state


def worker_session_factory():  # type: ignore[no-untyped-def]
    """The session factory of this worker process (used by job functions)."""
    if "session_factory" not in _worker_state:
        from payouts.db.session import make_engine, make_session_factory

        config = Config.from_env()
        engine = make_engine(config.database_url)
        _worker_state.update(config=config, engine=engine, session_factory=make_session_factory(engine))
    return _worker_state["session_factory"]


def _after_fork_in_child() -> None:
    # A forked work horse must not reuse the parent's pooled connections: drop them (without
    # closing the parent's sockets) so the child opens its own.
    engine = _worker_state.get("engine")
    if engine is not None:
        engine.dispose(close=False)


def run_worker(config: Config, queues: tuple[str, ...] = QUEUES, burst: bool = False) -> None:
    if not config.redis_url:
        raise RuntimeError("PAYOUTS_REDIS_URL is not set: without Redis, jobs run inline and no worker is needed")
    worker_session_factory()
    os.register_at_fork(after_in_child=_after_fork_in_child)
    connection = Redis.from_url(config.redis_url)
    Worker([Queue(name, connection=connection) for name in queues], connection=connection).work(
        burst=burst
    )
