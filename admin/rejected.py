"""Listing rejected webhooks, for the admin API (`GET /v1/rejected-webhooks`) and the console alike:
newest first by arrival, a page at a time by keyset (the last row's arrival and id), filtered by
source, vendor, time of arrival and what their bodies name (common/rejected.py)."""

import base64
import binascii
from datetime import datetime

import asyncpg
import msgspec

from admin import wire
from admin.errors import Unprocessable
from common.db import DbConn
from common.rejected import KEYS, NEWEST_FIRST, RejectedFilter, body_names, search_keys, where

_LIST = """
SELECT id::text, source, vendor, received_at, stored_at, content_type, remote, reason,
       length(body) AS size, substring(body FROM 1 FOR {preview}) AS head, {keys} AS keys
FROM raw_webhooks WHERE {where}
{order}
LIMIT {limit}
"""


async def rejected_rows(
    conn: DbConn, chosen: RejectedFilter, *, limit: int, preview: int
) -> list[asyncpg.Record]:
    """Up to `limit` rows, newest first; each with `head` (the body's first `preview` bytes) and
    `keys` (what the body names: common.rejected.body_names reads them)."""
    params: list[object] = []
    condition = where(chosen, params)
    params += [preview, limit]
    sql = _LIST.format(
        preview=f"${len(params) - 1}", keys=KEYS, where=condition, order=NEWEST_FIRST, limit=f"${len(params)}"
    )
    return await conn.fetch(sql, *params)


class _Position(msgspec.Struct, array_like=True, frozen=True):
    received_at: datetime
    id: str


_cursor_decoder = msgspec.json.Decoder(_Position)


def _encode_cursor(row: wire.RejectedWebhook) -> str:
    raw = msgspec.json.encode(_Position(row.received_at, row.id))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        position = _cursor_decoder.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, msgspec.MsgspecError):
        raise Unprocessable("cursor: not a `next` value of this API") from None
    return position.received_at, position.id


async def list_rejected(
    conn: DbConn, query: wire.RejectedQuery, preview: int = 2048
) -> wire.RejectedWebhooks:
    chosen = RejectedFilter(
        source=query.source,
        vendors=[query.vendor.value] if query.vendor else None,
        since=query.since,
        until=query.until,
        keys=search_keys(
            {
                "test_id": query.test_id,
                "external_id": query.external_id,
                "key": query.exam_key,
                "email": query.email,
            }
        ),
        before=None if query.cursor is None else _decode_cursor(query.cursor),
    )
    rows = await rejected_rows(conn, chosen, limit=query.limit + 1, preview=preview)
    found = []
    for row in rows[: query.limit]:
        record = dict(row)
        names = body_names(record.pop("keys"))
        record["body_preview"] = bytes(record.pop("head")).decode("utf-8", "replace")
        found.append(msgspec.convert({**record, **msgspec.structs.asdict(names)}, wire.RejectedWebhook))
    more = len(rows) > query.limit
    return wire.RejectedWebhooks(rejected=found, next=_encode_cursor(found[-1]) if more else None)
