"""The console's pages: one handler per page or form. Reads are the console's own (queries.py);
changes to subscriptions go through admin/store.py, as the API's do."""

import asyncio
import dataclasses
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import urlencode

import asyncpg
import structlog
from aiohttp import web

from admin import send_test_event, store, wire
from admin.console import auth, display, queries
from admin.console.queues import Broker
from admin.console.roles import role_states
from admin.console.serving import PREFIX, BadInput, Renderer, safe_next
from admin.console.serving import caller as current_caller
from admin.replay import TaskSink, replay
from common.errors import TRANSIENT
from common.rejected import KINDS, Kind, RejectedFilter, body_names, search_key
from common.replay import count_rejected
from common.times import parse_time
from gradebook import crosswalk_db
from gradebook.config import OneRosterDestination, decode_destination
from schemas.event import Status, encode_event
from subscribers.signing import InvalidSecret, secret_key

log = structlog.get_logger("console")

PAGE: Final = 50
HEALTH_WINDOW: Final = timedelta(days=1)
# How long the replay page waits for the router's verdicts before showing what it has (it then
# reloads itself until every webhook is settled).
OUTCOME_WAIT: Final = 3.0
REPLAY_ALL_LIMIT: Final = 10_000
SUBSCRIPTION_STATUSES: Final = ("active", "disabled", "unsubscribed")
DELIVERY_STATUSES: Final = ("waiting", "pending", "held", "succeeded", "failed", "cancelled", "superseded")


def _destination_summary(kind: str, config: str | None) -> str:
    """What a subscription delivers to, in an operator's words."""
    if kind == "webhook" or config is None:
        return "signed webhooks (Standard Webhooks) POSTed to its URL"
    destination = decode_destination(config)
    if isinstance(destination, OneRosterDestination):
        return (
            f"a OneRoster 1.2 gradebook: results in class {destination.class_sourced_id}, one line item per"
            f" vendor and product; OAuth client {destination.oauth.client_id} (secret in"
            f" {destination.oauth.client_secret_env})"
        )
    return f"a Caliper 1.2 endpoint: grade and submission events, bearer token in {destination.token_env}"


def _uuid(value: str | None, what: str = "id") -> str:
    try:
        return str(uuid.UUID(value or ""))
    except ValueError:
        raise web.HTTPNotFound(reason=f"no such {what}") from None


def _time(value: str | None, field: str) -> datetime | None:
    """A time from a form: ISO 8601, or a datetime-local input's value (read as UTC)."""
    if not value or not value.strip():
        return None
    try:
        return parse_time(value)
    except ValueError as error:
        raise BadInput(f"{field}: {error}") from None


def _page_number(value: str | None) -> int:
    try:
        number = int(value or "1")
    except ValueError:
        raise BadInput("page: not a number") from None
    if not 1 <= number <= 10_000:
        raise BadInput("page: out of range")
    return number


def _before(request: web.Request) -> tuple[datetime, str] | None:
    at, key = request.query.get("before"), request.query.get("before_id")
    if not at or not key:
        return None
    moment = _time(at, "before")
    assert moment is not None
    return moment, _uuid(key)


def _link(path: str, **params: Any) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{PREFIX}{path}" + (f"?{urlencode(kept, doseq=True)}" if kept else "")


SEARCH_LABELS: Final = [
    ("email", "candidate email"),
    ("external_id", "external id (iTEP OID)"),
    ("test_id", "test id"),
    ("key", "exam key"),
]


def _kind(by: str) -> Kind:
    for kind in KINDS:
        if kind == by:
            return kind
    raise BadInput(f"by: one of {', '.join(KINDS)}")


def _with_names(rows: list[Any]) -> list[dict[str, Any]]:
    """Rows of rejected webhooks, each with `names`: what its body says (exam key, test id, …)."""
    return [{**dict(row), "names": body_names(row["keys"])} for row in rows]


@dataclass(frozen=True)
class _RejectedChoice:
    """The rejected list's filter, as a query string or a form gives it: source, vendor, the time of
    arrival, and one of the names a body can carry (`by` and `q`, as on "Find an exam")."""

    source: str | None
    vendor: str | None
    since: datetime | None
    until: datetime | None
    by: str
    q: str
    since_text: str
    until_text: str

    @classmethod
    def read(cls, values: Any) -> "_RejectedChoice":
        source = (values.get("source") or "").strip() or None
        if source is not None and len(source) > 200:
            raise BadInput("source: too long")
        vendor = values.get("vendor") or None
        if vendor is not None and vendor not in queries.VENDORS:
            raise BadInput(f"vendor: one of {', '.join(queries.VENDORS)}")
        q = (values.get("q") or "").strip()
        if len(q) > 500:
            raise BadInput("the search is too long")
        by = values.get("by") or "test_id"
        _kind(by)
        since_text, until_text = values.get("since") or "", values.get("until") or ""
        return cls(
            source,
            vendor,
            _time(since_text, "since"),
            _time(until_text, "until"),
            by,
            q,
            since_text,
            until_text,
        )

    def replace(self, *, until: datetime) -> "_RejectedChoice":
        return dataclasses.replace(self, until=until, until_text=until.isoformat())

    def keys(self) -> list[str]:
        return [search_key(_kind(self.by), self.q)] if self.q else []

    def any(self) -> bool:
        return any((self.source, self.vendor, self.since, self.until, self.q))

    def filter(self, *, before: tuple[datetime, str] | None = None) -> RejectedFilter:
        return RejectedFilter(
            source=self.source,
            vendors=[self.vendor] if self.vendor else None,
            since=self.since,
            until=self.until,
            keys=self.keys(),
            before=before,
        )

    def replay_filters(self) -> dict[str, Any]:
        """The replay's own filters (common.replay.replay_rejected and count_rejected)."""
        return {
            "source": self.source,
            "vendors": [self.vendor] if self.vendor else None,
            "since": self.since,
            "until": self.until,
            "keys": self.keys(),
        }

    def shown(self) -> dict[str, str | None]:
        """As the form and the links carry it."""
        return {
            "source": self.source,
            "vendor": self.vendor,
            "since": self.since_text or None,
            "until": self.until_text or None,
            "by": self.by if self.q else None,
            "q": self.q or None,
        }


class Pages:
    def __init__(
        self,
        pool: asyncpg.Pool,
        tasks: TaskSink,
        sessions: auth.Sessions,
        renderer: Renderer,
        broker: Callable[[], Broker | None],
        *,
        allow_private: bool = False,
    ) -> None:
        self._allow_private = allow_private
        self._pool = pool
        self._tasks = tasks
        self._sessions = sessions
        self._render = renderer
        self._broker = broker

    # -- signing in --------------------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.Response:
        caller = current_caller()
        if caller.authenticated:
            raise web.HTTPSeeOther(safe_next(request.query.get("next")))
        return self._render.page(
            request, "login.html", next=safe_next(request.query.get("next")), failed=False
        )

    async def login(self, request: web.Request) -> web.Response:
        caller = current_caller()
        form = await request.post()
        target = safe_next(str(form.get("next") or ""))
        token = form.get("token")
        if not isinstance(token, str) or not self._sessions.token_matches(token):
            log.warning("console sign-in refused", remote=request.remote)
            return self._render.page(request, "login.html", 401, next=target, failed=True)
        if caller.session is not None and not caller.session.authenticated:
            self._sessions.revoke(caller.session)
        session, cookie = self._sessions.issue(authenticated=True)
        response = web.HTTPSeeOther(target)
        auth.set_cookie(response, request, cookie, session)
        log.info("console sign-in", remote=request.remote)
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        caller = current_caller()
        if caller.session is not None:
            self._sessions.revoke(caller.session)
        response = web.HTTPSeeOther(PREFIX + "/login")
        auth.clear_cookie(response)
        raise response

    # -- overview ----------------------------------------------------------------------------------

    async def overview(self, request: web.Request) -> web.Response:
        now = datetime.now(UTC)
        day_ago, hour_ago = now - timedelta(days=1), now - timedelta(hours=1)
        async with self._pool.acquire() as conn:
            received = await queries.received(conn, day_ago, hour_ago)
            rejected = await queries.rejected_counts(conn, day_ago)
            by_status = await queries.subscriptions_by_status(conn)
            checker = await queries.checker(conn, hour_ago)
        table: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for row in received:
            counts = table[(row["vendor"], row["outcome"])]
            counts[0] += row["last_hour"]
            counts[1] += row["n"]
        chart = display.hourly_chart(((r["hour"], r["outcome"], r["n"]) for r in received), now)
        broker = self._broker()
        depths, broker_error = [], None
        if broker is None:
            broker_error = "no broker connection in this process"
        else:
            try:
                depths = await broker.depths()
            except TRANSIENT as error:
                broker_error = f"broker unavailable: {error!r}"
        dead = {d.group: d.messages for d in depths if d.group.endswith("dead")}
        return self._render.page(
            request,
            "overview.html",
            roles=role_states(depths, dict(checker), now),
            day_ago=day_ago.strftime("%Y-%m-%dT%H:%M"),
            link=_link,
            now=now,
            vendors=queries.VENDORS,
            table=sorted(table.items()),
            chart=chart,
            rejected=rejected,
            subscriptions=by_status,
            checker=checker,
            depths=depths,
            dead=dead,
            broker_error=broker_error,
        )

    # -- exams ---------------------------------------------------------------------------------------

    async def exams(self, request: web.Request) -> web.Response:
        by = request.query.get("by", "email")
        value = request.query.get("q", "").strip()
        vendor = request.query.get("vendor") or None
        if by not in queries.SEARCHES:
            raise BadInput(f"by: one of {', '.join(queries.SEARCHES)}")
        if vendor is not None and vendor not in queries.VENDORS:
            raise BadInput(f"vendor: one of {', '.join(queries.VENDORS)}")
        if len(value) > 500:
            raise BadInput("the search is too long")
        page = _page_number(request.query.get("page"))
        found: list[Any] = []
        rejected: list[Any] = []
        more = more_rejected = False
        vendors = [vendor] if vendor else queries.VENDORS
        if value:
            async with self._pool.acquire() as conn:
                if by == "key" and vendor is not None and await queries.exam(conn, vendor, value) is not None:
                    raise web.HTTPSeeOther(_link("/exam", vendor=vendor, key=value))
                rows = await queries.find_exams(conn, by, value, vendors, PAGE, (page - 1) * PAGE)
                # A rejected webhook has no event to find: what its body names is searched instead.
                if page == 1:
                    named = await queries.rejected_naming(conn, search_key(_kind(by), value), vendors, PAGE)
                    rejected, more_rejected = _with_names(named[:PAGE]), len(named) > PAGE
            found, more = rows[:PAGE], len(rows) > PAGE
        return self._render.page(
            request,
            "exams.html",
            by=by,
            q=value,
            vendor=vendor or "",
            vendors=queries.VENDORS,
            searches=SEARCH_LABELS,
            found=found,
            rejected=rejected,
            all_rejected=_link("/rejected", by=by, q=value, vendor=vendor) if more_rejected else None,
            page=page,
            previous=_link("/exams", by=by, q=value, vendor=vendor, page=page - 1) if page > 1 else None,
            next=_link("/exams", by=by, q=value, vendor=vendor, page=page + 1) if more else None,
            link=_link,
        )

    async def exam(self, request: web.Request) -> web.Response:
        vendor, key = request.query.get("vendor", ""), request.query.get("key", "")
        if vendor not in queries.VENDORS or not key:
            raise web.HTTPNotFound(reason="no such exam")
        async with self._pool.acquire() as conn:
            state = await queries.exam(conn, vendor, key)
            history = await queries.history(conn, vendor, key)
            named = await queries.rejected_naming(conn, search_key("key", key), [vendor], PAGE)
            if state is None and not history and not named:
                raise web.HTTPNotFound(reason="no such exam")
            deliveries = await queries.deliveries_of_events(conn, [e["id"] for e in history])
            attempts = await queries.attempts(conn, [d["id"] for d in deliveries])
        by_event: dict[str, list[Any]] = defaultdict(list)
        for d in deliveries:
            by_event[d["event_id"]].append(d)
        return self._render.page(
            request,
            "exam.html",
            vendor=vendor,
            key=key,
            state=state,
            history=history,
            deliveries=by_event,
            attempts=attempts,
            rejected=_with_names(named[:PAGE]),
            all_rejected=_link("/rejected", by="key", q=key, vendor=vendor) if len(named) > PAGE else None,
            link=_link,
        )

    async def webhook(self, request: web.Request) -> web.Response:
        webhook_id = _uuid(request.match_info["id"], "webhook")
        async with self._pool.acquire() as conn:
            found = await queries.webhook(conn, webhook_id)
            if found is None:
                raise web.HTTPNotFound(reason="no such webhook")
            events = await queries.events_of_webhook(conn, webhook_id)
        return self._render.page(
            request,
            "webhook.html",
            webhook=found,
            events=events,
            names=body_names(found["keys"]),
            link=_link,
        )

    # -- rejected webhooks and dead letters ----------------------------------------------------------

    async def rejected(self, request: web.Request) -> web.Response:
        chosen = _RejectedChoice.read(request.query)
        before = _before(request)
        async with self._pool.acquire() as conn:
            rows = await queries.rejected(conn, chosen.filter(before=before), PAGE)
            sources = await queries.rejected_sources(conn)
        shown = rows[:PAGE]
        older = None
        if len(rows) > PAGE:
            last = shown[-1]
            older = _link(
                "/rejected", **chosen.shown(), before=last["received_at"].isoformat(), before_id=last["id"]
            )
        return self._render.page(
            request,
            "rejected.html",
            rows=_with_names(shown),
            sources=sources,
            vendors=queries.VENDORS,
            searches=SEARCH_LABELS,
            filters=chosen.shown(),
            filtered=chosen.any(),
            paged=before is not None,
            newest=_link("/rejected", **chosen.shown()),
            older=older,
            link=_link,
        )

    async def replay_rejected(self, request: web.Request) -> web.Response:
        form = await request.post()
        broker = self._require_broker()
        back = safe_next(str(form.get("back") or "")) if form.get("back") else _link("/rejected")
        if form.get("all") != "1":
            ids = [_uuid(str(v), "webhook") for v in form.getall("id", [])]
            if not ids:
                raise BadInput("nothing selected: tick the webhooks to replay, or replay all")
            return await self._replay(broker, ids=ids)
        chosen = _RejectedChoice.read(form)
        if form.get("confirm") is None:
            # Asked first, with the count: the confirmation pins the end of the range to now, so
            # that what is replayed is what was counted (less what was replayed meanwhile).
            cancel = _link("/rejected", **chosen.shown())
            now = datetime.now(UTC)
            if chosen.until is None or chosen.until > now:
                chosen = chosen.replace(until=now)
            async with self._pool.acquire() as conn:
                count = await count_rejected(conn, **chosen.replay_filters())
            return self._render.page(
                request,
                "confirm_replay.html",
                count=count,
                limit=REPLAY_ALL_LIMIT,
                filters=chosen.shown(),
                until_pinned=chosen.until.isoformat() if chosen.until else "",
                back=back,
                cancel=cancel,
            )
        return await self._replay(broker, chosen=chosen)

    async def _replay(
        self, broker: Broker, *, ids: list[str] | None = None, chosen: "_RejectedChoice | None" = None
    ) -> web.Response:
        at = datetime.now(UTC)
        filters = chosen.replay_filters() if chosen is not None else {}
        async with self._pool.acquire() as conn:
            replayed = await broker.replay_rejected(conn, **filters, ids=ids, limit=REPLAY_ALL_LIMIT)
        log.info("console replay of rejected webhooks", count=len(replayed), all=chosen is not None)
        # The outcome page follows at most a page of them by id; the count says how many went.
        raise web.HTTPSeeOther(
            _link("/replayed", at=at.isoformat(), n=str(len(replayed)), id=replayed[:PAGE])
        )

    async def replayed(self, request: web.Request) -> web.Response:
        at = _time(request.query.get("at"), "at") or datetime.now(UTC)
        ids = [_uuid(v, "webhook") for v in request.query.getall("id", [])][:PAGE]
        try:
            count = int(request.query.get("n") or len(ids))
        except ValueError:
            raise BadInput("n: not a number") from None
        deadline = time.monotonic() + OUTCOME_WAIT
        while True:
            async with self._pool.acquire() as conn:
                rows = await queries.outcomes(conn, ids) if ids else []
            pending = [r for r in rows if r["stored_at"] < at]
            if not pending or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.1)
        return self._render.page(
            request,
            "replayed.html",
            rows=rows,
            at=at,
            count=count,
            pending={r["id"] for r in pending},
            refresh=request.path_qs if pending else None,
            link=_link,
        )

    def _require_broker(self) -> Broker:
        broker = self._broker()
        if broker is None:
            raise web.HTTPServiceUnavailable(reason="no broker connection in this process")
        return broker

    async def dead_letters(self, request: web.Request) -> web.Response:
        broker = self._broker()
        queues = []
        if broker is not None:
            for which, name in (
                ("raw", broker.topology.dead_queue),
                ("delivery", broker.topology.delivery_dead_queue),
            ):
                depth, letters = await broker.dead_letters(name, PAGE)
                queues.append((which, name, depth, letters))
        return self._render.page(
            request,
            "dead.html",
            queues=queues,
            broker=broker is not None,
            link=_link,
            done=request.query.get("moved"),
            which=request.query.get("which"),
        )

    async def replay_dead(self, request: web.Request) -> web.Response:
        form = await request.post()
        which = form.get("which")
        if which not in ("raw", "delivery"):
            raise BadInput("which: raw or delivery")
        moved = await self._require_broker().replay_dead(str(which))
        log.info("console replay of dead letters", queue=which, count=moved)
        raise web.HTTPSeeOther(_link("/dead", moved=str(moved), which=str(which)))

    # -- subscriptions -------------------------------------------------------------------------------

    async def subscriptions(self, request: web.Request) -> web.Response:
        status = request.query.get("status") or None
        if status is not None and status not in SUBSCRIPTION_STATUSES:
            raise BadInput(f"status: one of {', '.join(SUBSCRIPTION_STATUSES)}")
        page = _page_number(request.query.get("page"))
        async with self._pool.acquire() as conn:
            rows = await queries.subscriptions(
                conn,
                datetime.now(UTC) - HEALTH_WINDOW,
                status=status,
                limit=PAGE,
                offset=(page - 1) * PAGE,
            )
        return self._render.page(
            request,
            "subscriptions.html",
            rows=rows[:PAGE],
            status=status or "",
            statuses=SUBSCRIPTION_STATUSES,
            previous=_link("/subscriptions", status=status, page=page - 1) if page > 1 else None,
            next=_link("/subscriptions", status=status, page=page + 1) if len(rows) > PAGE else None,
            link=_link,
        )

    async def subscription(self, request: web.Request) -> web.Response:
        subscription_id = _uuid(request.match_info["id"], "subscription")
        status = request.query.get("status") or None
        if status is not None and status not in DELIVERY_STATUSES:
            raise BadInput(f"status: one of {', '.join(DELIVERY_STATUSES)}")
        before = _before(request)
        async with self._pool.acquire() as conn:
            rows = await queries.subscriptions(
                conn, datetime.now(UTC) - HEALTH_WINDOW, subscription_id=subscription_id
            )
            if not rows:
                raise web.HTTPNotFound(reason="no such subscription")
            secrets = await queries.secrets_summary(conn, subscription_id)
            deliveries = await queries.subscription_deliveries(
                conn, subscription_id, status=status, before=before, limit=PAGE
            )
            shown = deliveries[:PAGE]
            attempts = await queries.attempts(conn, [d["id"] for d in shown])
            held = []
            if rows[0]["destination_kind"] != "webhook":
                held = await crosswalk_db.held(conn, subscription_id=subscription_id, limit=PAGE)
        older = None
        if len(deliveries) > PAGE:
            last = shown[-1]
            older = _link(
                f"/subscriptions/{subscription_id}",
                status=status,
                before=last["created_at"].isoformat(),
                before_id=last["id"],
            )
        return self._render.page(
            request,
            "subscription.html",
            sub=rows[0],
            secrets=secrets,
            deliveries=shown,
            attempts=attempts,
            status=status or "",
            statuses=DELIVERY_STATUSES,
            older=older,
            newest=_link(f"/subscriptions/{subscription_id}", status=status),
            paged=before is not None,
            done=request.query.get("done"),
            n=request.query.get("n"),
            test_types=[s.value for s in Status],
            held=held,
            destination=_destination_summary(rows[0]["destination_kind"], rows[0]["destination"]),
            link=_link,
        )

    async def set_status(self, request: web.Request) -> web.Response:
        subscription_id = _uuid(request.match_info["id"], "subscription")
        form = await request.post()
        status: Literal["active", "disabled"]
        match form.get("status"):
            case "active":
                status = "active"
            case "disabled":
                status = "disabled"
            case _:
                raise BadInput("status: active or disabled")
        if status == "disabled" and form.get("confirm") != "1":
            # Asked first: what disabling it means for this subscription, then a form to confirm.
            async with self._pool.acquire() as conn:
                rows = await queries.subscriptions(
                    conn, datetime.now(UTC) - HEALTH_WINDOW, subscription_id=subscription_id
                )
            if not rows:
                raise web.HTTPNotFound(reason="no such subscription")
            if rows[0]["status"] != "active":
                raise web.HTTPSeeOther(_link(f"/subscriptions/{subscription_id}"))
            return self._render.page(
                request,
                "confirm_disable.html",
                sub=rows[0],
                back=_link(f"/subscriptions/{subscription_id}"),
            )
        async with self._pool.acquire() as conn:
            updated = await store.update_subscription(
                conn, subscription_id, wire.SubscriptionUpdate(status=status), None
            )
        if updated is None:
            raise web.HTTPNotFound(reason="no such subscription")
        log.info("console: subscription status set", subscription_id=subscription_id, status=status)
        raise web.HTTPSeeOther(
            _link(f"/subscriptions/{subscription_id}", done="enabled" if status == "active" else "disabled")
        )

    async def rotate(self, request: web.Request) -> web.Response:
        subscription_id = _uuid(request.match_info["id"], "subscription")
        form = await request.post()
        secret = str(form.get("secret") or "").strip()
        try:
            secret_key(secret)
        except InvalidSecret as error:
            raise BadInput(f"secret: {error}") from None
        try:
            overlap = int(str(form.get("overlap_hours") or "24")) * 3600
        except ValueError:
            raise BadInput("overlap: a whole number of hours") from None
        if not 0 <= overlap <= 30 * 86400:
            raise BadInput("overlap: between 0 and 720 hours")
        async with self._pool.acquire() as conn:
            until = await store.rotate_secret(conn, subscription_id, secret, overlap)
        if until is None:
            raise web.HTTPNotFound(reason="no such subscription")
        log.info("console: secret rotated", subscription_id=subscription_id, overlap_seconds=overlap)
        raise web.HTTPSeeOther(_link(f"/subscriptions/{subscription_id}", done="rotated"))

    async def send_test_event(self, request: web.Request) -> web.Response:
        subscription_id = _uuid(request.match_info["id"], "subscription")
        form = await request.post()
        try:
            status = Status(str(form.get("type") or Status.COMPLETED.value))
        except ValueError:
            raise BadInput(f"type: one of {', '.join(s.value for s in Status)}") from None
        async with self._pool.acquire() as conn:
            sent = await send_test_event.send_test_event(
                conn, subscription_id, wire.TestEvent(type=status), allow_private=self._allow_private
            )
        if sent is None:
            raise web.HTTPNotFound(reason="no such subscription")
        return self._render.page(
            request,
            "test_sent.html",
            sent=sent,
            event=encode_event(sent.event).decode(),
            subscription_id=subscription_id,
            back=_link(f"/subscriptions/{subscription_id}"),
            statuses=[s.value for s in Status],
        )

    async def replay_failed(self, request: web.Request) -> web.Response:
        subscription_id = _uuid(request.match_info["id"], "subscription")
        form = await request.post()
        since = _time(str(form.get("since") or ""), "since")
        if since is None:
            raise BadInput("since: give the time from which failed deliveries are sent again")
        async with self._pool.acquire() as conn:
            status = await store.subscription_status(conn, subscription_id)
        if status is None:
            raise web.HTTPNotFound(reason="no such subscription")
        if status != "active":
            raise BadInput(f"the subscription is {status}: enable it first")
        todo = await replay(self._pool, self._tasks, subscription_id, since=since)
        log.info("console: failed deliveries replayed", subscription_id=subscription_id, count=len(todo))
        raise web.HTTPSeeOther(_link(f"/subscriptions/{subscription_id}", done="replayed", n=str(len(todo))))
