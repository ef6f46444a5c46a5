"""One verification call: a small signed JSON POST to one endpoint, whatever the number of
subscriptions on it. Signed with the live secrets of all of them (the signature header carries one
signature per secret, as during a rotation), so each subscriber can verify it with its own secret."""

import uuid
from datetime import UTC, datetime

from schemas.delivery import Verification, encode_verification
from subscribers.poster import Outcome, Poster
from subscribers.signing import InvalidSecret, secret_key, webhook_headers
from workers.checker.store import DueEndpoint


async def verify(poster: Poster, endpoint: DueEndpoint) -> Outcome:
    try:
        keys = [secret_key(s) for s in endpoint.secrets]
    except InvalidSecret as error:  # only a hand-edited database gets here
        return Outcome(status=None, latency_ms=0.0, error=f"bad secret: {error}")
    # Wall time, not the checker's clock: the receiver checks webhook-timestamp against its own.
    now = datetime.now(UTC)
    message = Verification(id=str(uuid.uuid4()), timestamp=now)
    body = encode_verification(message)
    headers = webhook_headers(keys, message.id, int(now.timestamp()), body)
    return await poster.post(endpoint.url, body, headers)
