"""Listing exams (`GET /v1/exams` without `key`): the most recently updated first, a page at a time.

Paging is by keyset, not offset: the cursor is the last row's (updated_at, vendor, exam_key), so a
page is as cheap deep in the table as at its start and rows updated meanwhile are not skipped twice."""

import base64
import binascii
from datetime import datetime

import msgspec

from admin import wire
from admin.errors import Unprocessable
from common.db import DbConn


class _Position(msgspec.Struct, array_like=True, frozen=True):
    updated_at: datetime
    vendor: str
    exam_key: str


_cursor_decoder = msgspec.json.Decoder(_Position)


def encode_cursor(row: wire.ExamSummary) -> str:
    raw = msgspec.json.encode(_Position(row.updated_at, row.vendor, row.exam_key))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> _Position:
    try:
        return _cursor_decoder.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, msgspec.MsgspecError):
        raise Unprocessable("cursor: not a `next` value of this API") from None


_LIST = """
SELECT vendor, exam_key, status, occurred_at, event_id::text, updated_at FROM exams
WHERE ($1::text IS NULL OR vendor = $1) AND ($2::text IS NULL OR status = $2)
  AND ($3::timestamptz IS NULL OR updated_at >= $3) AND ($4::timestamptz IS NULL OR updated_at < $4)
  AND ($5::timestamptz IS NULL OR (updated_at, vendor, exam_key) < ($5, $6, $7))
ORDER BY updated_at DESC, vendor DESC, exam_key DESC
LIMIT $8
"""


async def list_exams(conn: DbConn, query: wire.ExamQuery) -> wire.Exams:
    after = None if query.cursor is None else decode_cursor(query.cursor)
    rows = await conn.fetch(
        _LIST,
        query.vendor.value if query.vendor else None,
        query.status,
        query.since,
        query.until,
        after.updated_at if after else None,
        after.vendor if after else None,
        after.exam_key if after else None,
        query.limit + 1,  # one more than asked: is there a next page?
    )
    exams = [msgspec.convert(dict(row), wire.ExamSummary) for row in rows[: query.limit]]
    more = len(rows) > query.limit
    return wire.Exams(exams=exams, next=encode_cursor(exams[-1]) if more else None)
