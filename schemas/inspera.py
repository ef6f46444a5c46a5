"""Inspera Assessment webhook events: thin JSON notifications (ids, no grades).

Required are the fields the event is keyed on: `event`, `contextObjectId`, `contextObjectType` and
`timestamp`. `marketplaceId` is documented as mandatory but only ever copied into the attributes, so
its absence does not reject a notification; `extraInfo` may be absent, null or partial. The value
rules are in `workers/vendors/inspera.py`.
"""

from datetime import datetime
from typing import Any

import msgspec


class InsperaExtraInfo(msgspec.Struct, frozen=True, kw_only=True):
    type: str | None = None
    value: Any = None


class InsperaEvent(msgspec.Struct, frozen=True, kw_only=True):
    event: str
    marketplaceId: int | None = None
    contextObjectId: int
    contextObjectType: str
    timestamp: datetime
    associatedObjectId: int | None = None
    associatedObjectType: str | None = None
    triggeringUserId: int | None = None
    extraInfo: InsperaExtraInfo | None = None


def is_verification_ping(body: bytes) -> bool:
    """Inspera's verification call is a Java map string, `{contextObjectId=0, …, event=verification, …}`,
    not JSON, and must be answered 200 without being processed."""
    stripped = body.strip()
    return stripped.startswith(b"{") and b"event=verification" in stripped and b'"' not in stripped[:64]
