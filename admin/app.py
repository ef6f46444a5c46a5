"""The admin API as an aiohttp application. Routes and the OpenAPI document come from one table."""

import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Final, TypeVar
from urllib.parse import urlsplit

import asyncpg
import msgspec
import structlog
from aiohttp import web

from admin import (
    bodies,
    console,
    crosswalk,
    erasures,
    exams,
    itep_orders,
    rejected,
    send_test_event,
    store,
    wire,
)
from admin.errors import Conflict, NotFound, Unavailable, Unprocessable
from admin.event_filters import check_event_types
from admin.event_types import event_types
from admin.middleware import make_middleware
from admin.openapi import Operation, document
from admin.replay import BeingAttempted, TaskSink, UnknownEvent, replay
from common.times import parse_time
from gradebook.config import Destination, OneRosterDestination, kind_of, problems, url_of
from schemas.vendor import Vendor
from subscribers.endpoint import InvalidEndpoint, normalize_endpoint
from subscribers.signing import InvalidSecret, generate_secret, secret_key
from subscribers.ssrf import ForbiddenAddress, check_host

log = structlog.get_logger("admin")

T = TypeVar("T")
_UUID: Final = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_encoder: Final = msgspec.json.Encoder()


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(value), status=status, content_type="application/json")


class Handlers:
    def __init__(
        self, pool: asyncpg.Pool, tasks: TaskSink, *, allow_private: bool, ready: Callable[[], bool]
    ) -> None:
        self._ready = ready
        self._pool = pool
        self._tasks = tasks
        self._allow_private = allow_private

    # -- helpers -----------------------------------------------------------------------------------

    @staticmethod
    def _query(request: web.Request, kind: type[T]) -> T:
        query: dict[str, object] = dict(request.query)
        for name in ("since", "until"):
            # As an operator types it (`since=2026-11-22`), read as the bodies and the CLI read it.
            if (text := request.query.get(name)) is not None:
                query[name] = _time(name, text)
        return msgspec.convert(query, kind, strict=False)

    @staticmethod
    def _id(request: web.Request) -> str:
        value = request.match_info["id"]
        if not _UUID.match(value):
            raise NotFound("no such subscription")
        return value

    async def _endpoint(self, url: str, field: str = "url") -> str:
        try:
            endpoint = normalize_endpoint(url)
        except InvalidEndpoint as error:
            raise Unprocessable(f"{field}: {error}") from None
        host, port = _host_port(endpoint)
        try:
            await check_host(host, port, allow_private=self._allow_private)
        except ForbiddenAddress as error:
            raise Unprocessable(f"{field}: {error}") from None
        return endpoint

    async def _destination(self, destination: Destination, vendors: Sequence[str]) -> str:
        """A gradebook destination checked (what it needs from each vendor it receives, its URLs
        under the SSRF policy); the endpoint its results go to."""
        found = problems(destination, None, [Vendor(v) for v in vendors])
        if found:
            raise Unprocessable("destination: " + "; ".join(found))
        if isinstance(destination, OneRosterDestination):
            await self._endpoint(destination.oauth.token_url, "destination.oauth.token_url")
        return await self._endpoint(url_of(destination), "destination")

    @staticmethod
    def _secret(given: str | None) -> str:
        if given is None:
            return generate_secret()
        try:
            secret_key(given)
        except InvalidSecret as error:
            raise Unprocessable(f"secret: {error}") from None
        return given

    # -- handlers ----------------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return _json(wire.Health("alive"))

    async def readyz(self, request: web.Request) -> web.Response:
        if not self._ready():
            raise Unavailable("not ready: shutting down, or the broker or database is unreachable")
        return _json(wire.Health("ready"))

    async def event_types(self, request: web.Request) -> web.Response:
        return _json(wire.EventTypes(event_types()))

    async def create_subscription(self, request: web.Request) -> web.Response:
        body = await bodies.json(request, wire.SubscriptionCreate)
        check_event_types(body.event_types)
        if body.destination is None:
            if body.url is None:
                raise Unprocessable("url: give the URL to POST to (or a gradebook destination)")
            endpoint = await self._endpoint(body.url)
        else:
            if body.url is not None:
                raise Unprocessable("url: a gradebook subscription's URL is its destination's: leave url out")
            endpoint = await self._destination(body.destination, body.vendors)
        secret = self._secret(body.secret)
        async with self._pool.acquire() as conn:
            created = await store.create_subscription(conn, body, endpoint, secret)
        log.info("subscription created", subscription_id=created.id, endpoint=endpoint)
        return _json(wire.SubscriptionCreated(subscription=created, secret=secret), status=201)

    async def list_subscriptions(self, request: web.Request) -> web.Response:
        query = self._query(request, wire.SubscriptionsQuery)
        async with self._pool.acquire() as conn:
            return _json(wire.Subscriptions(await store.list_subscriptions(conn, query)))

    async def get_subscription(self, request: web.Request) -> web.Response:
        async with self._pool.acquire() as conn:
            found = await store.get_subscription(conn, self._id(request))
        if found is None:
            raise NotFound("no such subscription")
        return _json(found)

    async def update_subscription(self, request: web.Request) -> web.Response:
        subscription_id = self._id(request)
        body = await bodies.json(request, wire.SubscriptionUpdate)
        check_event_types(body.event_types)
        async with self._pool.acquire() as conn:
            current = await store.get_subscription(conn, subscription_id)
        if current is None:
            raise NotFound("no such subscription")
        endpoint = None
        if body.destination is not None:
            if current.destination_kind != kind_of(body.destination):
                raise Unprocessable(
                    f"destination: this subscription delivers to a {current.destination_kind}: a"
                    " subscription keeps its kind (create another one)"
                )
            endpoint = await self._destination(body.destination, body.vendors or current.vendors)
        elif body.url is not None:
            if current.destination_kind != "webhook":
                raise Unprocessable("url: a gradebook subscription's URL is its destination's: change that")
            endpoint = await self._endpoint(body.url)
        async with self._pool.acquire() as conn:
            updated = await store.update_subscription(conn, subscription_id, body, endpoint)
        if updated is None:
            raise NotFound("no such subscription")
        log.info("subscription updated", subscription_id=subscription_id, status=updated.status)
        return _json(updated)

    async def delete_subscription(self, request: web.Request) -> web.Response:
        subscription_id = self._id(request)
        async with self._pool.acquire() as conn:
            if not await store.delete_subscription(conn, subscription_id):
                raise NotFound("no such subscription")
        log.info("subscription deleted", subscription_id=subscription_id)
        return web.Response(status=204)

    async def rotate_secret(self, request: web.Request) -> web.Response:
        subscription_id = self._id(request)
        body = await bodies.json(request, wire.RotateSecret)
        secret = self._secret(body.secret)
        async with self._pool.acquire() as conn:
            until = await store.rotate_secret(conn, subscription_id, secret, body.overlap_seconds)
        if until is None:
            raise NotFound("no such subscription")
        log.info("secret rotated", subscription_id=subscription_id, overlap_seconds=body.overlap_seconds)
        return _json(wire.SecretRotated(secret=secret, previous_expires_at=until))

    async def deliveries(self, request: web.Request) -> web.Response:
        subscription_id = self._id(request)
        query = self._query(request, wire.DeliveriesQuery)
        async with self._pool.acquire() as conn:
            if await store.subscription_status(conn, subscription_id) is None:
                raise NotFound("no such subscription")
            return _json(wire.Deliveries(await store.deliveries(conn, subscription_id, query)))

    async def replay(self, request: web.Request) -> web.Response:
        subscription_id = self._id(request)
        body = await bodies.json(request, wire.Replay)
        if (body.event_id is None) == (body.since is None):
            raise Unprocessable("give either event_id or since")
        since = None if body.since is None else _time("since", body.since)
        async with self._pool.acquire() as conn:
            status = await store.subscription_status(conn, subscription_id)
        if status is None:
            raise NotFound("no such subscription")
        if status != "active":
            raise Unprocessable(f"the subscription is {status}: enable it first")
        try:
            queued = await replay(
                self._pool, self._tasks, subscription_id, event_id=body.event_id, since=since
            )
        except UnknownEvent:
            raise NotFound("no such event") from None
        except BeingAttempted:
            raise Conflict(
                "the delivery is being attempted right now: replay it once that attempt is recorded"
            ) from None
        return _json(wire.Replayed(queued), status=202)

    async def test_event(self, request: web.Request) -> web.Response:
        subscription_id = self._id(request)
        # No body at all is the default test event (aiohttp keeps the bytes read: read twice, once).
        empty = not (await request.read()).strip()
        body = wire.TestEvent() if empty else await bodies.json(request, wire.TestEvent)
        async with self._pool.acquire() as conn:
            sent = await send_test_event.send_test_event(
                conn, subscription_id, body, allow_private=self._allow_private
            )
        if sent is None:
            raise NotFound("no such subscription")
        return _json(sent)

    async def exam(self, request: web.Request) -> web.Response:
        query = self._query(request, wire.ExamQuery)
        if query.key is None:
            async with self._pool.acquire() as conn:
                return _json(await exams.list_exams(conn, query))
        if query.vendor is None:
            raise Unprocessable("key: give the vendor too (an exam key is unique per vendor)")
        async with self._pool.acquire() as conn:
            found = await store.get_exam(conn, query.vendor.value, query.key)
        if found is None:
            raise NotFound("no such exam")
        return _json(found)

    async def events(self, request: web.Request) -> web.Response:
        query = self._query(request, wire.EventsQuery)
        async with self._pool.acquire() as conn:
            return _json(wire.Events(await store.query_events(conn, query)))

    async def rejected(self, request: web.Request) -> web.Response:
        query = self._query(request, wire.RejectedQuery)
        async with self._pool.acquire() as conn:
            return _json(await rejected.list_rejected(conn, query))


def _time(name: str, text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as error:
        raise Unprocessable(f"{name}: {error}") from None


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


Route = tuple[Operation, Callable[[web.Request], Awaitable[web.StreamResponse]]]
_EXAM_OR_EXAMS: Final = (wire.Exam, wire.Exams)


def routes(h: Handlers) -> list[Route]:
    sub = "/v1/subscriptions/{id}"
    return [
        (Operation("GET", "/healthz", "liveness", 200, wire.Health, public=True), h.healthz),
        (Operation("GET", "/readyz", "readiness", 200, wire.Health, public=True), h.readyz),
        (
            Operation(
                "GET", "/v1/event-types", "event types a subscription can filter on", 200, wire.EventTypes
            ),
            h.event_types,
        ),
        (
            Operation(
                "GET",
                "/v1/subscriptions",
                "list subscriptions",
                200,
                wire.Subscriptions,
                query=wire.SubscriptionsQuery,
            ),
            h.list_subscriptions,
        ),
        (
            Operation(
                "POST",
                "/v1/subscriptions",
                "create a subscription; its secret is shown this once",
                201,
                wire.SubscriptionCreated,
                body=wire.SubscriptionCreate,
            ),
            h.create_subscription,
        ),
        (Operation("GET", sub, "get a subscription", 200, wire.Subscription), h.get_subscription),
        (
            Operation(
                "PATCH",
                sub,
                "update a subscription (status active re-enables it)",
                200,
                wire.Subscription,
                body=wire.SubscriptionUpdate,
            ),
            h.update_subscription,
        ),
        (
            Operation("DELETE", sub, "delete a subscription and its deliveries", 204, None),
            h.delete_subscription,
        ),
        (
            Operation(
                "POST",
                sub + "/secret/rotate",
                "add a new signing secret; the old ones sign on for the overlap",
                200,
                wire.SecretRotated,
                body=wire.RotateSecret,
            ),
            h.rotate_secret,
        ),
        (
            Operation(
                "GET",
                sub + "/deliveries",
                "deliveries of a subscription, newest first, with every attempt",
                200,
                wire.Deliveries,
                query=wire.DeliveriesQuery,
            ),
            h.deliveries,
        ),
        (
            Operation(
                "POST",
                sub + "/replay",
                "resend one event, or every failed delivery since a time",
                202,
                wire.Replayed,
                body=wire.Replay,
                errors=(409,),
            ),
            h.replay,
        ),
        (
            Operation(
                "POST",
                sub + "/test",
                "send the subscription a test event now (signed as a delivery is, through the same client "
                "and address policy) and answer the subscriber's status, latency and error; not stored, "
                "never retried",
                200,
                wire.TestEventSent,
                body=wire.TestEvent,
            ),
            h.test_event,
        ),
        (
            Operation(
                "GET",
                "/v1/exams",
                "with vendor and key: an exam's current state and its history; without key: a page of "
                "exams, the most recently updated first",
                200,
                _EXAM_OR_EXAMS,
                query=wire.ExamQuery,
            ),
            h.exam,
        ),
        (
            Operation(
                "GET",
                "/v1/events",
                "stored events by vendor, exam, type and time, the newest first (order=oldest to read on)",
                200,
                wire.Events,
                query=wire.EventsQuery,
            ),
            h.events,
        ),
        (
            Operation(
                "GET",
                "/v1/rejected-webhooks",
                "raw webhooks stored as rejected, with the reason and what the body names (exam, test, "
                "candidate), the newest first by arrival; filter by source, vendor, time of arrival or "
                "those names; `next` is the cursor of the next page",
                200,
                wire.RejectedWebhooks,
                query=wire.RejectedQuery,
            ),
            h.rejected,
        ),
        *erasures.routes(h._pool),
        *itep_orders.routes(h._pool),
        *crosswalk.routes(h._pool),
    ]


def create_app(
    pool: asyncpg.Pool,
    tasks: TaskSink,
    *,
    token: str | None,
    allow_private: bool,
    ready: Callable[[], bool] = lambda: True,
) -> web.Application:
    table = routes(Handlers(pool, tasks, allow_private=allow_private, ready=ready))
    spec = _encoder.encode(document([op for op, _ in table]))

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=spec, content_type="application/json")

    app = web.Application(middlewares=[make_middleware(token)], client_max_size=64 * 1024)
    app.router.add_get("/openapi.json", openapi, allow_head=False)
    for op, handler in table:
        app.router.add_route(op.method, op.path, handler)
    console.setup(app, pool, tasks, token=token, allow_private=allow_private)
    return app
