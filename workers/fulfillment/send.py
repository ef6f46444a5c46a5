"""Sending an order to iTEP: the handler of the fulfillment work queue.

    claim (one transaction: the order locked, `sending`, attempts + 1)
    call iTEP (no transaction open)
    record the outcome (one transaction), then, for a retry, the task into its delay tier

An order is claimed only while `ordered` or `retrying`, so a duplicate task (the relay publishes at
least once) or a redelivery after the call never sends it twice. One found `sending` belongs to a
call under way, or to a worker that died during one: after the call's deadline it can only be the
latter, and the order becomes `unconfirmed`, never sent again by itself (see call.py).
"""

from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import msgspec
import structlog
from aio_pika.abc import AbstractIncomingMessage

from common import logs
from common.consumer import describe
from common.errors import Reject, Retry
from common.itep.orders import Change, OrderRow, add_history, lock_order, update_order
from schemas.itep_order import Status, decode_order_changed
from workers.fulfillment import request
from workers.fulfillment.broker import Later
from workers.fulfillment.call import Kind, Outcome, call_itep
from workers.fulfillment.metrics import CALLS
from workers.fulfillment.settings import FulfillmentSettings

log = structlog.get_logger("fulfillment")


class Sender:
    def __init__(
        self,
        settings: FulfillmentSettings,
        pool: asyncpg.Pool,
        session: aiohttp.ClientSession,
        later: Later,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._session = session
        self._later = later
        self._limits = aiohttp.ClientTimeout(
            total=settings.timeout, connect=min(settings.connect_timeout, settings.timeout)
        )

    async def handle(self, message: AbstractIncomingMessage) -> None:
        try:
            order_id = decode_order_changed(message.body).order_id
        except msgspec.MsgspecError as error:
            raise Reject(f"not an order event: {describe(error)}") from None
        logs.bind(order_id=order_id)
        order = await self._claim(order_id)
        if order is None:
            return
        data = request.body(order, self._settings.track)
        outcome = await call_itep(
            self._session,
            self._settings.endpoint,
            data,
            request.headers(order.product_code, data, self._settings),
            limits=self._limits,
        )
        CALLS.labels(outcome.kind.value).inc()
        log.info(
            "iTEP called",
            attempt=order.attempts,
            outcome=outcome.kind.value,
            status=outcome.status,
            test_id=outcome.test_id,
            detail=outcome.detail,
        )
        delay = await self._record(order, outcome)
        if delay is not None:
            await self._later.after(delay, message.body, message.message_id)

    async def _claim(self, order_id: str) -> OrderRow | None:
        async with self._pool.acquire() as conn, conn.transaction():
            order = await lock_order(conn, order_id)
            if order is None:
                log.warning("no such order: task dropped")
                return None
            if order.status == Status.SENDING:
                deadline = order.updated_at + timedelta(seconds=self._settings.timeout + 5)
                if datetime.now(UTC) < deadline:
                    # Another worker's call may still be under way: look again after its deadline.
                    raise Retry(
                        "a call for this order may be under way", after=min(60.0, self._settings.timeout)
                    )
                detail = (
                    "a call to iTEP was under way when its worker stopped: iTEP may have assigned"
                    " a test ID (check iTEP's admin pages for the order id)"
                )
                await update_order(conn, order_id, status=Status.UNCONFIRMED, last_error=detail)
                await add_history(conn, [_change(order_id, Status.UNCONFIRMED, detail)])
                return None
            if order.status not in (Status.ORDERED, Status.RETRYING):
                return None  # sent already, or waiting for an operator
            await update_order(conn, order_id, status=Status.SENDING, attempts=order.attempts + 1)
            return msgspec.structs.replace(order, status=Status.SENDING, attempts=order.attempts + 1)

    async def _record(self, sent: OrderRow, outcome: Outcome) -> float | None:
        """Stores the outcome; returns the delay before the next try, if there is one."""
        response = {
            "response_status": outcome.status,
            "response_body": outcome.raw,
            "response": outcome.parsed,
        }
        delays = self._settings.retry_delays
        async with self._pool.acquire() as conn, conn.transaction():
            order = await lock_order(conn, sent.id)
            if order is None or order.attempts != sent.attempts:
                log.warning("order changed while iTEP was called: outcome not recorded")
                return None
            if order.status not in (Status.SENDING, Status.UNCONFIRMED):
                # A results webhook told of its test ID first: keep what iTEP answered, nothing more.
                if outcome.test_id and order.test_id is None:
                    await update_order(conn, order.id, test_id=outcome.test_id, **response)
                return None
            if outcome.kind is Kind.ASSIGNED:
                await update_order(
                    conn,
                    order.id,
                    status=Status.TEST_ID_ASSIGNED,
                    test_id=outcome.test_id,
                    last_error=None,
                    **response,
                )
                await add_history(
                    conn, [_change(order.id, Status.TEST_ID_ASSIGNED, f"test ID {outcome.test_id}")]
                )
                return None
            if outcome.kind is Kind.RETRY and order.attempts <= len(delays):
                delay = delays[order.attempts - 1]
                detail = f"attempt {order.attempts}: {outcome.detail}; next in {delay:g}s"
                await update_order(
                    conn, order.id, status=Status.RETRYING, last_error=outcome.detail, **response
                )
                await add_history(conn, [_change(order.id, Status.RETRYING, detail)])
                return delay
            if outcome.kind is Kind.UNCONFIRMED:
                status, detail = (
                    Status.UNCONFIRMED,
                    f"{outcome.detail} (check iTEP's admin pages for the order id)",
                )
            elif outcome.kind is Kind.RETRY:
                status, detail = Status.FAILED, f"gave up after {order.attempts} attempts: {outcome.detail}"
            else:
                status, detail = Status.FAILED, f"iTEP refused the order: {outcome.detail}"
            await update_order(conn, order.id, status=status, last_error=detail, **response)
            await add_history(conn, [_change(order.id, status, detail)])
            return None


def _change(order_id: str, status: str, detail: str | None) -> Change:
    return Change(order_id=order_id, change=status, status=status, detail=detail)
