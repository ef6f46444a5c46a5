"""Publishing the checker's operational events on the results exchange (`resultbus.#`)."""

import structlog
from aio_pika.abc import AbstractExchange

from common.broker import BROKER_ERRORS, persistent_message
from schemas.delivery import SUBSCRIPTION_UNSUBSCRIBED_KEY, SubscriptionUnsubscribed, encode_operational

log = structlog.get_logger("checker")


class Notifier:
    def __init__(self, results: AbstractExchange, *, timeout: float) -> None:
        self._results = results
        self._timeout = timeout

    async def unsubscribed(self, event: SubscriptionUnsubscribed) -> bool:
        """Publishes (persistent, confirmed when the channel confirms). The unsubscription is already
        committed and stands whatever happens here: a lost event is logged, never retried into a
        second unsubscription."""
        try:
            await self._results.publish(
                persistent_message(
                    encode_operational(event), message_id=event.id, content_type="application/json"
                ),
                routing_key=SUBSCRIPTION_UNSUBSCRIBED_KEY,
                timeout=self._timeout,
            )
        except BROKER_ERRORS as error:
            log.error(
                "unsubscribed event not published",
                subscription_id=event.subscription_id,
                error=repr(error),
            )
            return False
        return True
