"""One call to iTEP, and what its outcome means for the order.

The outcome that matters most is the one we cannot read: a call that reached iTEP and got no answer
(a timeout after the body was sent, a dropped connection) may have been given a test ID. iTEP offers
no way to ask, and a second call would take a second test ID from the inventory, so such an order is
never sent again by itself: it is `unconfirmed` until a results webhook names it, or an operator has
looked in iTEP's admin pages (docs/itep-orders.md). Only what certainly did not reach iTEP (no
connection) and what iTEP answered as its own failure (5xx, 429) is retried.
"""

from enum import StrEnum
from typing import Any

import aiohttp
import msgspec

from common.consumer import describe
from workers.fulfillment.response import MAX_KEPT, read_answer


class Kind(StrEnum):
    ASSIGNED = "assigned"  # a test ID came back
    REFUSED = "refused"  # iTEP said no: nothing was assigned, sending it again changes nothing
    RETRY = "retry"  # nothing was assigned: worth sending again later
    UNCONFIRMED = "unconfirmed"  # iTEP may have assigned a test ID: never sent again by itself


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    kind: Kind
    detail: str | None = None
    test_id: str | None = None
    status: int | None = None
    raw: str | None = None
    parsed: Any = None


def classify(status: int, raw: str) -> Outcome:
    answer = read_answer(status, raw)
    common = {"status": status, "raw": raw, "parsed": answer.parsed}
    if answer.test_id is not None and 200 <= status < 300:
        return Outcome(kind=Kind.ASSIGNED, test_id=answer.test_id, **common)
    if status >= 500 or status == 429:
        return Outcome(
            kind=Kind.RETRY, detail=f"iTEP answered {status}: {answer.error or raw[:200]}", **common
        )
    if answer.error is not None:
        return Outcome(kind=Kind.REFUSED, detail=answer.error, **common)
    if 200 <= status < 300:
        return Outcome(
            kind=Kind.UNCONFIRMED,
            detail=f"iTEP answered {status} without a test ID resultbus could read (kept as received)",
            **common,
        )
    return Outcome(kind=Kind.REFUSED, detail=f"iTEP answered {status}: {raw[:200]}", **common)


def itep_session() -> aiohttp.ClientSession:
    # A fresh connection per call: a kept-alive one that the server closed would fail *after* the
    # request was written, and look like a call iTEP may have acted on.
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=32))


async def call_itep(
    session: aiohttp.ClientSession,
    url: str,
    data: bytes,
    headers: dict[str, str],
    *,
    limits: aiohttp.ClientTimeout,
) -> Outcome:
    try:
        async with session.post(
            url,
            data=data,
            headers=headers,
            allow_redirects=False,
            timeout=limits,
        ) as response:
            raw = (await response.content.read(MAX_KEPT)).decode("utf-8", "replace")
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
        return Outcome(kind=Kind.RETRY, detail=f"iTEP not reached: {describe(error)}")
    except (TimeoutError, aiohttp.ClientError) as error:
        return Outcome(
            kind=Kind.UNCONFIRMED,
            detail=f"sent, no answer ({describe(error) if str(error) else 'timed out'}): iTEP may have"
            " assigned a test ID",
        )
    return classify(response.status, raw)
