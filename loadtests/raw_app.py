"""The raw-Celery baseline workers: each task writes one row.

`celery -A loadtests.raw_app worker -Q raw,raw_io` is today's baseline ("raw"): built by Chorus's own
`create_celery_app` (same Redis, acks_late, prefetch 1, JSON, result backend, task events), so the only
difference from a Chorus worker is what a task does: one INSERT through a pooled SQLAlchemy engine (the
pool size a Chorus worker process uses) instead of claim, run and record with audit.

`celery -A loadtests.raw_app:lean_app worker -Q lean,lean_io` is the "lean" baseline (also the worker of
the "durable" one): the same broker and acks settings, but no result backend (every task ignores its
result) and no task events, which Chorus's configuration pays for (Flower, chords) and a floor need not.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from celery import Celery
from celery.signals import worker_process_init
from sqlalchemy import Engine, text

from orchestrator.celery_app import create_celery_app
from orchestrator.settings import Settings
from orchestrator.store.database import make_engine

RAW_QUEUE = "raw"
#: Where the raw side's io-pool links go (the crosspool scenario): a second queue, as Chorus's io pool is.
RAW_IO_QUEUE = "raw_io"
LEAN_QUEUE = "lean"
LEAN_IO_QUEUE = "lean_io"
WRITE_ROW = "raw.write_row"
CHAT_AND_WRITE = "raw.chat_and_write"
#: The one table the baseline writes (created by the harness next to Chorus's tables).
TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS loadtest_raw_rows ("
    " id bigserial PRIMARY KEY, run text NOT NULL, seq integer NOT NULL,"
    " written_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    "CREATE INDEX IF NOT EXISTS loadtest_raw_rows_run ON loadtest_raw_rows (run)",
)
INSERT_ROW = text("INSERT INTO loadtest_raw_rows (run, seq) VALUES (:run, :seq)")


def create_raw_app(settings: Settings, *, lean: bool = False) -> Celery:
    """The baseline's Celery app, configured exactly like Chorus's, with its two queues added.

    `lean`: no result backend, results ignored, no task events (the lean and durable baselines)."""
    queues = (LEAN_QUEUE, LEAN_IO_QUEUE) if lean else (RAW_QUEUE, RAW_IO_QUEUE)
    app = create_celery_app(
        settings.model_copy(update={"pools": (*settings.pools, *queues)}), main="lean" if lean else "raw"
    )
    if lean:
        app.conf.update(
            result_backend=None,
            task_ignore_result=True,
            worker_send_task_events=False,
            task_send_sent_event=False,
        )
    _db: dict[str, Engine] = {}
    lock = threading.Lock()

    def db() -> Engine:
        with lock:
            if "engine" not in _db:  # after fork: connections must not cross it
                _db["engine"] = make_engine(settings.database_url, pool_size=2)
            return _db["engine"]

    @worker_process_init.connect(weak=False)
    def _after_fork(**_: Any) -> None:
        _db.clear()

    # Not shared: the harness builds two of these apps (raw and lean), each with its own tasks.
    @app.task(name=WRITE_ROW, shared=False)
    def write_row(prev: Any = None, *, run: str, seq: int) -> str:
        with db().begin() as connection:
            connection.execute(INSERT_ROW, {"run": run, "seq": seq})
        return "ok"

    @app.task(name=CHAT_AND_WRITE, shared=False)
    def chat_and_write(*, run: str, seq: int, base_url: str, api_key: str) -> str:
        # The same SDK call the ai pool makes (openai, one chat completion), then the one row.
        import openai

        client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
        try:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"loadtest raw {run} {seq}"}]
            )
        finally:
            client.close()
        with db().begin() as connection:
            connection.execute(INSERT_ROW, {"run": run, "seq": seq})
        return "ok"

    return app


def _worker_app(*, lean: bool) -> Celery:
    from orchestrator.settings import load_settings

    return create_raw_app(load_settings(), lean=lean)


# Celery loads `loadtests.raw_app:app` (or `:lean_app`) by import string in the worker process only;
# importing the module elsewhere (the harness) builds nothing until it asks for one.
def __getattr__(name: str) -> Any:
    if name in ("app", "lean_app") and os.environ.get("CHORUS_DATABASE_URL"):
        value = _worker_app(lean=name == "lean_app")
        globals()[name] = value
        return value
    raise AttributeError(name)
