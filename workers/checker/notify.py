"""Publishing the checker's operational events on the results exchange (`resultbus.#`)."""

import asyncio

import prometheus_client
import structlog
from aio_pika.abc import AbstractExchange

from common.broker import BROKER_ERRORS, persistent_message
from schemas.delivery import SUBSCRIPTION_UNSUBSCRIBED_KEY, SubscriptionUnsubscribed, encode_operational

log = structlog.get_logger("checker")


class Notifier:
    def __init__(self, results: AbstractExchange, *, timeout: float) -> None:
        self._results = results
        self._timeout = timeout

    async def announce(self, event: SubscriptionUnsubscribed) -> None:
        """Publishes (persistent, confirmed), trying a few times over a few seconds. The unsubscription
        is already committed and stands whatever happens here; an event still not published is
        logged and counted (`resultbus_checker_events_lost`), never retried into a second one."""
        for delay in (*_RETRIES, None):
            try:
                await self._results.publish(
                    persistent_message(
                        encode_operational(event), message_id=event.id, content_type="application/json"
                    ),
                    routing_key=SUBSCRIPTION_UNSUBSCRIBED_KEY,
                    timeout=self._timeout,
                )
                return
            except BROKER_ERRORS as error:
                if delay is None:
                    LOST.inc()
                    log.error(
                        "unsubscribed event not published",
                        subscription_id=event.subscription_id,
                        error=repr(error),
                    )
                    return
                await asyncio.sleep(delay)


_RETRIES = (0.5, 2.0)
LOST = prometheus_client.Counter(
    "resultbus_checker_events_lost",
    "subscription.unsubscribed events that could not be published (the unsubscription stands).",
)
