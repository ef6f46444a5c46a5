"""Orders from the command queue `<prefix>.itep.orders`: validated, stored, answered.

The answer goes to the message's `reply_to` (with its `correlation_id`) when it has one; either way
the order's first change (`resultbus.itep.order.ordered` or `.rejected`, with the caller's
reference) is published on the results exchange. A message delivered twice is one order: the
reference identifies it. A message that is not an order at all goes to the dead-letter queue with
the reason (and the reason is answered too).
"""

import asyncpg
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from common import decoding
from common.broker import persistent_message
from common.decoding import DECODE_ERRORS
from common.errors import Reject
from common.itep.orders import ConflictingOrder, create_order
from common.itep.validation import problems
from schemas.itep_order import OrderReply, decode_order_request, encode
from workers.fulfillment.metrics import ORDERS

log = structlog.get_logger("fulfillment")


class Commands:
    def __init__(self, pool: asyncpg.Pool, channel: AbstractChannel, *, timeout: float) -> None:
        """`channel` must have publisher confirms: a reply is sent before the order is acked."""
        self._pool = pool
        self._exchange = channel.default_exchange
        self._timeout = timeout

    async def handle(self, message: AbstractIncomingMessage) -> None:
        try:
            order = decode_order_request(message.body)
        except DECODE_ERRORS as error:
            # Nesting too deep for msgspec (RecursionError) is the message's fault as much as bad JSON.
            reason = f"not an order: {decoding.reason(error)}"
            await self._reply(message, OrderReply(error=reason))
            raise Reject(reason) from None
        found = problems(order)
        try:
            async with self._pool.acquire() as conn:
                stored, new = await create_order(conn, order, found)
        except ConflictingOrder as error:
            await self._reply(
                message, OrderReply(id=error.order_id, reference=order.reference, error=str(error))
            )
            raise Reject(str(error)) from None
        except asyncpg.DataError as error:  # a value PostgreSQL cannot hold (a NUL character)
            reason = f"invalid value: {error}"
            await self._reply(message, OrderReply(reference=order.reference, error=reason))
            raise Reject(reason) from None
        if new:
            ORDERS.labels(stored.status).inc()
        log.info("order taken", order_id=stored.id, reference=stored.reference, status=stored.status, new=new)
        await self._reply(
            message,
            OrderReply(
                id=stored.id, reference=stored.reference, status=stored.status, problems=stored.problems
            ),
        )

    async def _reply(self, message: AbstractIncomingMessage, reply: OrderReply) -> None:
        if not message.reply_to:
            return
        out = persistent_message(encode(reply), message_id=reply.id, content_type="application/json")
        out.correlation_id = message.correlation_id
        await self._exchange.publish(out, routing_key=message.reply_to, timeout=self._timeout)
