"""The raw HTTP baseline (`uvicorn --factory loadtests.raw_api:create_app`): FastAPI, one INSERT, one Celery send.

What "create an execution" costs without Chorus: the same web stack (FastAPI on one uvicorn process, a
sync handler in the thread pool like Chorus's routes), one row written and one message sent to the raw
worker, which writes its own row.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import text

from loadtests.raw_app import RAW_QUEUE, WRITE_ROW, create_raw_app
from orchestrator.settings import load_settings
from orchestrator.store.database import make_engine

_INSERT = text("INSERT INTO loadtest_raw_rows (run, seq) VALUES (:run, :seq)")


def create_app() -> FastAPI:
    settings = load_settings()
    celery = create_raw_app(settings)
    db = make_engine(settings.database_url)  # the pool size Chorus's API uses
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "UP"}

    @app.post("/raw/{run}")
    async def create(run: str, request: Request) -> dict[str, Any]:
        body = await request.body()
        seq = int(json.loads(body)["n"]) if body else 0
        return await _create(run, seq)

    async def _create(run: str, seq: int) -> dict[str, Any]:
        from starlette.concurrency import run_in_threadpool

        def write_and_send() -> None:
            with db.begin() as connection:
                connection.execute(_INSERT, {"run": f"{run}:api", "seq": seq})
            celery.signature(WRITE_ROW, kwargs={"run": run, "seq": seq}, queue=RAW_QUEUE).apply_async()

        await run_in_threadpool(write_and_send)
        return {"run": run, "seq": seq}

    return app
