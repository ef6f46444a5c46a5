"""Where an attempt goes: a Standard Webhooks POST to the subscription's URL, or a write into a
gradebook (a OneRoster 1.2 result, a Caliper 1.2 envelope: gradebook/, docs/destinations.md).

`prepare` decides what the attempt is before it takes a slot of the endpoint: the signed body, or
the gradebook write, or that there is nothing to send (`Skip`: an event the gradebook takes nothing
from, or one that did not move its exam) or nobody to send it to yet (`Hold`: a candidate the
crosswalk does not know; gradebook/delivering.py). `send` makes it, answered as one Outcome whatever
the kind, and `final` says whether a failure is worth trying again.
"""

import time

import asyncpg
import msgspec

from gradebook import delivering
from gradebook.delivering import GradebookWrite, Hold
from gradebook.plan import Skip
from gradebook.send import Sender, retryable
from schemas.event import decode_event, encode_event
from subscribers.poster import Outcome, Poster
from subscribers.signing import InvalidSecret, secret_key, webhook_headers
from workers.delivery.store import State, Target


class Webhook(msgspec.Struct, frozen=True):
    body: bytes
    headers: dict[str, str]


class Broken(msgspec.Struct, frozen=True):
    """What cannot be sent as it stands (a bad secret or configuration, only a hand-edited database
    gets here): recorded as a failed attempt with this error."""

    error: str


Work = Webhook | GradebookWrite | Broken


class Destinations:
    def __init__(self, pool: asyncpg.Pool, poster: Poster, sender: Sender) -> None:
        self._pool = pool
        self._poster = poster
        self._sender = sender

    async def prepare(self, target: Target, state: State, payload: str) -> Work | Skip | Hold:
        # The event as the router published it (the same encoding, from what it stored).
        event = decode_event(payload.encode())
        event_id = state.event_id
        if target.kind == "webhook":
            try:
                keys = [secret_key(s) for s in target.secrets]
            except InvalidSecret as error:
                return Broken(f"bad secret: {error}")
            body = encode_event(event)
            return Webhook(body, webhook_headers(keys, event_id, int(time.time()), body))
        if event.status is not None and not state.applied:
            # A gradebook keeps an exam's current result: a status that did not move the exam (a
            # Complete re-sent after an invalidation, a Finished after Completed) would undo it.
            state_now = event.exam.state if event.exam is not None else None
            return Skip(f"{event.type}: did not move the exam (it stands at {state_now})")
        try:
            destination = delivering.destination(target.destination or "")
        except (msgspec.MsgspecError, ValueError) as error:
            return Broken(f"bad destination: {error}")
        return await delivering.prepare(self._pool, event, destination)

    async def send(self, target: Target, work: Work) -> Outcome:
        match work:
            case Webhook(body, headers):
                return await self._poster.post(target.url, body, headers)
            case GradebookWrite(destination, write):
                return await self._sender.send(destination, write)
            case Broken(error):
                return Outcome(status=None, latency_ms=0.0, error=error)

    @staticmethod
    def final(target: Target, outcome: Outcome) -> bool:
        """A failure not worth trying again: a gradebook refusing the write (a 4xx but 408 and 429),
        which says why. Every webhook failure is retried (a 410 disables the subscription)."""
        return target.kind != "webhook" and not retryable(outcome)
