"""The admin API's iTEP orders: place one, look one up, and the two operator actions an order that
went unconfirmed needs (record the test ID found in iTEP's admin pages, or send it again).

An order is answered at once with its id (202: the call to iTEP is a fulfillment worker's); an
order that breaks iTEP's rules is stored as `rejected` with every problem listed, and answered so.
"""

import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Final

import asyncpg
import msgspec
import structlog
from aiohttp import web
from msgspec import Meta

from admin import bodies
from admin.errors import NotFound, Unprocessable
from admin.openapi import Operation
from common.itep import orders
from common.itep.validation import problems
from schemas.itep_order import OrderRequest, Status

log = structlog.get_logger("admin")

_UUID: Final = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_encoder: Final = msgspec.json.Encoder()

# The statuses an operator may act on: an order whose call's outcome is unknown, or that failed.
_OPERATOR_STATUSES: Final = (Status.UNCONFIRMED, Status.FAILED)


class OrderChange(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    change: str  # the new status, `result` (a result that did not move it) or `conflict`
    status: str  # the order's status after it
    event_id: str | None = None
    event_type: str | None = None
    detail: str | None = None
    at: datetime


class ItepResponse(msgspec.Struct, frozen=True, kw_only=True):
    """iTEP's last answer: its format is not public, so it is kept as received (and as parsed JSON)."""

    status: int | None = None
    body: str | None = None
    parsed: Any = None


class ItepOrder(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # iTEP's `trExternal_ID` and so the `OID` of its results
    reference: str
    product_code: str
    status: str
    problems: list[str] = []
    test_id: str | None = None
    attempts: int = 0
    last_error: str | None = None
    order: OrderRequest
    response: ItepResponse | None = None
    created_at: datetime
    updated_at: datetime
    history: list[OrderChange] = []


class OrdersQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reference: Annotated[str, Meta(min_length=1, max_length=200)]


class TestIdFound(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    test_id: Annotated[str, Meta(min_length=1, max_length=64, pattern="^[A-Za-z0-9]+$")]


def _view(order: orders.OrderRow, history: list[orders.HistoryRow]) -> ItepOrder:
    response = None
    if order.response_status is not None or order.response_body is not None:
        response = ItepResponse(status=order.response_status, body=order.response_body, parsed=order.response)
    return ItepOrder(
        id=order.id,
        reference=order.reference,
        product_code=order.product_code,
        status=order.status,
        problems=order.problems,
        test_id=order.test_id,
        attempts=order.attempts,
        last_error=order.last_error,
        order=order.request,
        response=response,
        created_at=order.created_at,
        updated_at=order.updated_at,
        history=[OrderChange(**msgspec.structs.asdict(h)) for h in history],
    )


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(value), status=status, content_type="application/json")


def _order_id(request: web.Request) -> str:
    value = request.match_info["id"]
    if not _UUID.match(value):
        raise NotFound("no such order")
    return value.lower()


class OrderHandlers:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def _shown(self, conn: Any, order_id: str, status: int = 200) -> web.Response:
        order = await orders.get_order(conn, order_id)
        if order is None:
            raise NotFound("no such order")
        return _json(_view(order, await orders.history(conn, order_id)), status=status)

    async def place(self, request: web.Request) -> web.Response:
        body = await bodies.json(request, OrderRequest)
        found = problems(body)
        async with self._pool.acquire() as conn:
            try:
                order, new = await orders.create_order(conn, body, found)
            except orders.ConflictingOrder as error:
                raise Unprocessable(str(error)) from None
            log.info("order placed", order_id=order.id, status=order.status, new=new)
            return await self._shown(conn, order.id, status=202)

    async def get(self, request: web.Request) -> web.Response:
        async with self._pool.acquire() as conn:
            return await self._shown(conn, _order_id(request))

    async def find(self, request: web.Request) -> web.Response:
        query = msgspec.convert(dict(request.query), OrdersQuery, strict=False)
        async with self._pool.acquire() as conn:
            order = await orders.find_order(conn, query.reference)
            if order is None:
                raise NotFound("no order with that reference")
            return await self._shown(conn, order.id)

    async def resend(self, request: web.Request) -> web.Response:
        """For an order whose test ID an operator did NOT find in iTEP's admin pages."""
        order_id = _order_id(request)
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                order = await self._operable(conn, order_id)
                detail = f"sent again by an operator (was {order.status})"
                await orders.update_order(conn, order_id, status=Status.ORDERED, last_error=None)
                await orders.add_history(
                    conn,
                    [
                        orders.Change(
                            order_id=order_id, change=Status.ORDERED, status=Status.ORDERED, detail=detail
                        )
                    ],
                )
            log.info("order sent again", order_id=order_id, was=order.status)
            return await self._shown(conn, order_id, status=202)

    async def record_test_id(self, request: web.Request) -> web.Response:
        """For an order whose test ID an operator found in iTEP's admin pages (by the order id in
        its Assigned To): the order takes it, and its results tie to it."""
        order_id = _order_id(request)
        body = await bodies.json(request, TestIdFound)
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                order = await self._operable(conn, order_id)
                await orders.update_order(
                    conn, order_id, status=Status.TEST_ID_ASSIGNED, test_id=body.test_id, last_error=None
                )
                detail = f"test ID {body.test_id} recorded by an operator (was {order.status})"
                change = orders.Change(
                    order_id=order_id,
                    change=Status.TEST_ID_ASSIGNED,
                    status=Status.TEST_ID_ASSIGNED,
                    detail=detail,
                )
                await orders.add_history(conn, [change])
            log.info("test ID recorded", order_id=order_id, test_id=body.test_id)
            return await self._shown(conn, order_id)

    @staticmethod
    async def _operable(conn: Any, order_id: str) -> orders.OrderRow:
        order = await orders.lock_order(conn, order_id)
        if order is None:
            raise NotFound("no such order")
        if order.status not in _OPERATOR_STATUSES:
            raise Unprocessable(
                f"the order is {order.status}: only an unconfirmed or failed order can be acted on"
            )
        return order


Route = tuple[Operation, Callable[[web.Request], Awaitable[web.StreamResponse]]]


def routes(pool: asyncpg.Pool) -> list[Route]:
    h = OrderHandlers(pool)
    one = "/v1/itep/orders/{id}"
    return [
        (
            Operation(
                "POST",
                "/v1/itep/orders",
                "order an iTEP test ID for a candidate; answered at once (status ordered, or rejected"
                " with iTEP's error texts); the same reference again is the same order",
                202,
                ItepOrder,
                body=OrderRequest,
            ),
            h.place,
        ),
        (
            Operation(
                "GET",
                "/v1/itep/orders",
                "an order by the caller's reference",
                200,
                ItepOrder,
                query=OrdersQuery,
            ),
            h.find,
        ),
        (Operation("GET", one, "an order with its test ID, status and history", 200, ItepOrder), h.get),
        (
            Operation(
                "POST",
                one + "/resend",
                "send an unconfirmed or failed order again (only after checking iTEP's admin pages"
                " that no test ID carries its id)",
                202,
                ItepOrder,
            ),
            h.resend,
        ),
        (
            Operation(
                "POST",
                one + "/test-id",
                "record the test ID found in iTEP's admin pages for an unconfirmed or failed order",
                200,
                ItepOrder,
                body=TestIdFound,
            ),
            h.record_test_id,
        ),
    ]
