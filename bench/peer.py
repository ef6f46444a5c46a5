"""The pipeline's peer: what a Python shop would build with FastAPI and Celery. A FastAPI handler
checks the Inspera signature, hands the body to a Celery task (RabbitMQ broker, publisher confirms
on, a quorum queue like the raw queue) and answers 200; a Celery worker inserts the row into
PostgreSQL, acking after the insert.

Run by bench/pipeline.py as two processes, configured from the environment (a queue name and a
schema of the bench's world, removed with it):
    uvicorn bench.peer:api          the web side
    celery -A bench.peer worker     the task side
"""

import hashlib
import hmac
import os
import uuid
from typing import Any

from celery import Celery
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

QUEUE = os.environ.get("RESULTBUS_BENCH_PEER_QUEUE", "rbbench-peer")
SCHEMA = os.environ.get("RESULTBUS_BENCH_PEER_SCHEMA", "public")
SECRET = os.environ.get("RESULTBUS_BENCH_INSPERA_SECRET", "").encode()
DATABASE_URL = os.environ.get("RESULTBUS_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")

TABLE = "peer_webhooks"
CREATE_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (id uuid PRIMARY KEY, source text NOT NULL,"
    " body text NOT NULL, received_at timestamptz NOT NULL DEFAULT now())"
)

celery = Celery(
    "bench_peer", broker=os.environ.get("RESULTBUS_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
)
celery.conf.update(
    broker_transport_options={"confirm_publish": True},
    broker_connection_retry_on_startup=True,
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    task_default_queue_type="quorum",
    worker_detect_quorum_queues=True,
    task_acks_late=True,
    task_ignore_result=True,
    task_serializer="json",
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    worker_hijack_root_logger=False,
)

_connection: Any = None


def _db() -> Any:
    """One connection per worker process, opened on first use (after the prefork)."""
    global _connection
    if _connection is None:
        import psycopg

        _connection = psycopg.connect(DATABASE_URL, autocommit=True, options=f"-c search_path={SCHEMA}")
    return _connection


@celery.task(name="bench.store_webhook")
def store_webhook(webhook_id: str, source: str, body: str) -> None:
    _db().execute(
        f"INSERT INTO {TABLE} (id, source, body) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        (webhook_id, source, body),
    )


api = FastAPI()


@api.post("/hooks/{source}")
async def hook(source: str, request: Request) -> JSONResponse:
    body = await request.body()
    sent = request.headers.get("x-inspera-signature", "")
    expected = hmac.new(SECRET, body, hashlib.sha1).hexdigest()
    if not hmac.compare_digest(sent, expected):
        raise HTTPException(401, "bad signature")
    webhook_id = str(uuid.uuid4())
    # Kombu's publish blocks until the confirm: off the event loop, as a careful shop would.
    await run_in_threadpool(store_webhook.delay, webhook_id, source, body.decode())
    return JSONResponse({"id": webhook_id})


@api.get("/readyz")
async def readyz() -> JSONResponse:
    return JSONResponse({"status": "ready"})
