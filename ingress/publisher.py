"""Publishing raw envelopes with publisher confirms.

A webhook is answered 200 only once the broker confirmed its envelope; anything short of a confirm
within the timeout (a nack, a return because nothing is bound, a closed channel, silence) is
`BrokerUnavailable`, which the vendor sees as 503 + Retry-After and retries.
"""

import asyncio
import time
from typing import Final, cast

import aiormq
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aiormq import spec
from aiormq.abc import DeliveredMessage

from common import tracing
from common.amqp import connect_robust, redact_urls
from common.broker import BROKER_ERRORS, declare_raw
from ingress.errors import BrokerUnavailable
from schemas.envelope import ENVELOPE_CONTENT_TYPE
from schemas.topology import Topology

log = structlog.get_logger("ingress.publisher")

_PERSISTENT: Final = 2  # AMQP delivery mode


class Publisher:
    def __init__(self, url: str, topology: Topology, *, confirm_timeout: float) -> None:
        self._url = url
        self._topology = topology
        self._confirm_timeout = confirm_timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    @property
    def ready(self) -> bool:
        """True while the channel is open, i.e. a publish can be confirmed right now."""
        connection, channel = self._connection, self._channel
        return (
            connection is not None
            and channel is not None
            and not connection.is_closed
            and not channel.is_closed
        )

    async def connect(self, *, retry_for: float = 0.0) -> None:
        """Connect, open a confirming channel and declare the raw topology.

        Retries for `retry_for` seconds so that a broker that is still starting does not fail the
        boot; after that raises `BrokerUnavailable` with a message that says where it tried. Once
        connected, the robust connection reconnects by itself.
        """
        deadline = time.monotonic() + retry_for
        delay = 0.5
        while True:
            try:
                await self._open()
                return
            except BROKER_ERRORS as exc:
                await self.close()
                if time.monotonic() + delay > deadline:
                    raise BrokerUnavailable(
                        f"cannot reach the broker at {redact_urls(self._url)}: {exc!r}"
                    ) from exc
                log.warning("broker not reachable yet, retrying", retry_in=delay, error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _open(self) -> None:
        self._connection = await connect_robust(self._url)
        # on_return_raises: with mandatory=True an unroutable message becomes an error rather than
        # a confirm for a message that went nowhere.
        self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange, _ = await declare_raw(self._channel, self._topology)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        if connection is not None and not connection.is_closed:
            await connection.close()

    async def publish(self, envelope: bytes, message_id: str, routing_key: str) -> None:
        channel, exchange = self._channel, self._exchange
        if channel is None or exchange is None or not self.ready:
            # Fail at once rather than wait for a reconnect the vendor cannot see.
            raise BrokerUnavailable("broker channel is not open")
        properties = spec.Basic.Properties(
            content_type=ENVELOPE_CONTENT_TYPE,
            delivery_mode=_PERSISTENT,
            message_id=message_id,
            headers=tracing.headers(),
        )
        try:
            # Straight on the AMQP channel: aio-pika's Message wrapper is a sizeable share of a
            # request, and this is the hot path. The channel is open (checked above), so the
            # underlying channel is at hand; the deadline covers the publish and its confirm.
            amqp = cast(aiormq.Channel, await channel.get_underlay_channel())
            confirmed = await amqp.basic_publish(
                envelope,
                exchange=exchange.name,
                routing_key=routing_key,
                properties=properties,
                mandatory=True,
                timeout=self._confirm_timeout,
                wait=False,
            )
        except TimeoutError:
            raise BrokerUnavailable(f"no confirm within {self._confirm_timeout}s") from None
        except BROKER_ERRORS as exc:
            raise BrokerUnavailable(f"publish failed: {type(exc).__name__}") from exc
        if isinstance(confirmed, DeliveredMessage):
            # Returned: nothing is bound to take it, so it went nowhere.
            raise BrokerUnavailable("publish returned: no queue bound to the raw exchange")
