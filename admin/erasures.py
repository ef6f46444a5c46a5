"""Erasure by data subject: `POST /v1/erasures` records a request, `GET /v1/erasures/{id}` shows it.

The erasure itself runs in a retention worker (`python -m workers retention`, see
workers/retention/erasure.py): it reads every stored raw body, which no request should wait for.
The answer is 202 with the record, pending; poll it until `status` is `completed`. The record says who
asked, when, what kind of identifier, and what was touched (ids and counts); once completed it holds
no identifier or other erased value.
"""

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Final, Literal

import asyncpg
import msgspec
import structlog
from aiohttp import web
from msgspec import Meta

from admin import bodies
from admin.errors import NotFound, Unprocessable
from admin.openapi import Operation
from schemas.erasure import ExamId
from schemas.vendor import Vendor

log = structlog.get_logger("admin")

_UUID: Final = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
Identifier = Annotated[str, Meta(min_length=1, max_length=320, pattern=r"\S")]


class ErasureRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Exactly one of `email`, `candidate_id` (the vendor's id of the candidate) or `external_id`
    (the caller's own: iTEP `OID`, Testpress `institute_attempt_id`); `vendor` narrows it to one."""

    email: Identifier | None = None
    candidate_id: Identifier | None = None
    external_id: Identifier | None = None
    vendor: Vendor | None = None
    requested_by: Annotated[str, Meta(min_length=1, max_length=200)]  # a person, or a ticket
    reason: Annotated[str, Meta(max_length=500)] | None = None


class ErasureTouched(msgspec.Struct, frozen=True, kw_only=True):
    raw_webhooks: list[str] = []
    events: list[str] = []
    exams: list[ExamId] = []
    deliveries: list[str] = []
    itep_orders: list[str] = []


class Erasure(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    subject_kind: Literal["email", "candidate_id", "external_id"]
    vendor: str | None = None
    requested_by: str
    reason: str | None = None
    status: Literal["pending", "running", "completed"]
    requested_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    published_at: datetime | None = None  # resultbus.erasure.completed confirmed on the results exchange
    attempts: int
    scores_kept: bool
    counts: dict[str, int]
    touched: ErasureTouched


_COLUMNS = """
SELECT id::text, subject_kind, vendor, requested_by, reason, status, requested_at, started_at,
       completed_at, published_at, attempts, keep_scores AS scores_kept, counts::text, touched::text
FROM erasures
"""

_counts = msgspec.json.Decoder(dict[str, int])
_touched = msgspec.json.Decoder(ErasureTouched)
_encoder = msgspec.json.Encoder()


def _record(row: asyncpg.Record) -> Erasure:
    record = dict(row)
    record["counts"] = _counts.decode(record.pop("counts"))
    record["touched"] = _touched.decode(record.pop("touched"))
    return msgspec.convert(record, Erasure, from_attributes=True)


class ErasureHandlers:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, request: web.Request) -> web.Response:
        body = await bodies.json(request, ErasureRequest)
        given = [
            (k, v)
            for k, v in (
                ("email", body.email),
                ("candidate_id", body.candidate_id),
                ("external_id", body.external_id),
            )
            if v is not None
        ]
        if len(given) != 1:
            raise Unprocessable("give exactly one of email, candidate_id or external_id")
        kind, value = given[0]
        erasure_id = str(uuid.uuid4())
        row = await self._pool.fetchrow(
            "INSERT INTO erasures (id, subject_kind, subject, vendor, requested_by, reason)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            erasure_id,
            kind,
            value.strip(),
            body.vendor.value if body.vendor else None,
            body.requested_by,
            body.reason,
        )
        assert row is not None
        found = await self._pool.fetchrow(_COLUMNS + " WHERE id = $1::uuid", erasure_id)
        assert found is not None
        # The identifier is never logged: the id of the request is what an operator follows.
        log.info("erasure requested", erasure_id=erasure_id, subject_kind=kind, vendor=body.vendor)
        return web.Response(body=_encoder.encode(_record(found)), status=202, content_type="application/json")

    async def get(self, request: web.Request) -> web.Response:
        erasure_id = request.match_info["id"]
        if not _UUID.match(erasure_id):
            raise NotFound("no such erasure")
        row = await self._pool.fetchrow(_COLUMNS + " WHERE id = $1::uuid", erasure_id)
        if row is None:
            raise NotFound("no such erasure")
        return web.Response(body=_encoder.encode(_record(row)), content_type="application/json")


def routes(
    pool: asyncpg.Pool,
) -> list[tuple[Operation, Callable[[web.Request], Awaitable[web.StreamResponse]]]]:
    h = ErasureHandlers(pool)
    return [
        (
            Operation(
                "POST",
                "/v1/erasures",
                "erase what is stored about one candidate (queued: poll the record until completed)",
                202,
                Erasure,
                body=ErasureRequest,
            ),
            h.create,
        ),
        (Operation("GET", "/v1/erasures/{id}", "an erasure's record", 200, Erasure), h.get),
    ]
