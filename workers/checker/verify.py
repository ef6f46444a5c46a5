"""One verification call per endpoint, whatever the number of subscriptions on it: a small signed JSON
POST, signed with the live secrets of all of them (the signature header carries one signature per
secret, as during a rotation), so each subscriber can verify it with its own secret. An endpoint only
gradebooks use gets the gradebook's own check instead (gradebook/send.py: `Sender.verify`), which
writes nothing."""

import uuid
from datetime import UTC, datetime

import msgspec

from gradebook.config import decode_destination
from gradebook.send import Sender
from schemas.delivery import Verification, encode_verification
from subscribers.poster import Outcome, Poster
from subscribers.signing import InvalidSecret, secret_key, webhook_headers
from workers.checker.store import DueEndpoint


async def verify(poster: Poster, sender: Sender, endpoint: DueEndpoint) -> Outcome:
    if endpoint.destination is not None:
        try:
            destination = decode_destination(endpoint.destination)
        except (msgspec.MsgspecError, ValueError) as error:  # only a hand-edited database gets here
            return Outcome(status=None, latency_ms=0.0, error=f"bad destination: {error}")
        return await sender.verify(destination)
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
