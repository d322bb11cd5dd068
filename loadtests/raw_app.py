"""The raw-Celery baseline worker (`celery -A loadtests.raw_app worker -Q raw`): each task writes one row.

It is built by Chorus's own `create_celery_app` (same Redis, acks_late, prefetch 1, JSON, result backend),
so the only difference from a Chorus worker is what a task does: one INSERT through a pooled SQLAlchemy
engine (the pool size a Chorus worker process uses) instead of claim, run and record with audit.
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
WRITE_ROW = "raw.write_row"
CHAT_AND_WRITE = "raw.chat_and_write"
#: The one table the baseline writes (created by the harness next to Chorus's tables).
TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS loadtest_raw_rows ("
    " id bigserial PRIMARY KEY, run text NOT NULL, seq integer NOT NULL,"
    " written_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    "CREATE INDEX IF NOT EXISTS loadtest_raw_rows_run ON loadtest_raw_rows (run)",
)
_INSERT = text("INSERT INTO loadtest_raw_rows (run, seq) VALUES (:run, :seq)")


def create_raw_app(settings: Settings) -> Celery:
    """The baseline's Celery app, configured exactly like Chorus's, with the raw queue added."""
    app = create_celery_app(settings.model_copy(update={"pools": (*settings.pools, RAW_QUEUE)}), main="raw")
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

    @app.task(name=WRITE_ROW)
    def write_row(prev: Any = None, *, run: str, seq: int) -> str:
        with db().begin() as connection:
            connection.execute(_INSERT, {"run": run, "seq": seq})
        return "ok"

    @app.task(name=CHAT_AND_WRITE)
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
            connection.execute(_INSERT, {"run": run, "seq": seq})
        return "ok"

    return app


def _worker_app() -> Celery:
    from orchestrator.settings import load_settings

    return create_raw_app(load_settings())


# Celery loads `loadtests.raw_app:app` by import string in the worker process only; importing the
# module elsewhere (the harness) builds nothing until it asks for `app`.
def __getattr__(name: str) -> Any:
    if name == "app" and os.environ.get("CHORUS_DATABASE_URL"):
        value = _worker_app()
        globals()["app"] = value
        return value
    raise AttributeError(name)
