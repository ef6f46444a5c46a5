"""Every queue and exchange a deployment declares on the broker under its prefix, named as the
processes name them from the same environment, and their depths: the console's queue depths,
`resultbus inspect queues` and `resultbus teardown` all read this one list.

The names of the delay tiers follow settings of roles that are not imported here (importing a role
registers its metrics, see workers/__main__.py): their defaults are repeated below, and a test checks
them against the roles' own (tests/integration/common/test_inventory.py)."""

import contextlib
from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import quote

import aiohttp
import aiormq
import msgspec
from aio_pika.abc import AbstractConnection
from yarl import URL

from common.env import SettingError, parse_duration, parse_durations
from common.settings import RETRY_DELAYS
from schemas.topology import Topology, tiers_ms

# subscribers/schedule.py DEFAULT_SCHEDULE and the delivery park (workers/delivery/settings.py).
DEFAULT_DELIVERY_SCHEDULE: Final = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
DEFAULT_DELIVERY_PARK: Final = 1.0
# workers/fulfillment/settings.py FulfillmentSettings.retry_delays.
DEFAULT_ITEP_RETRY_DELAYS: Final = (10.0, 60.0, 300.0, 1800.0, 7200.0)


class Queue(msgspec.Struct, frozen=True):
    group: str  # raw | raw retry | raw dead | delivery | delivery retry | delivery dead | itep …
    name: str
    # The role whose workers consume it (None: a delay tier or a dead-letter queue, which nothing
    # consumes on purpose): no consumer on such a queue means that role is not running.
    consumed_by: str | None = None


def _durations(env: Mapping[str, str], name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    # A value the role would refuse is its own to report (it does not start): the default stands in.
    with contextlib.suppress(ValueError):
        return parse_durations(env.get(name) or "") if env.get(name, "").strip() else default
    return default


def delivery_tiers_ms(env: Mapping[str, str]) -> list[int]:
    """The delivery delay tiers' TTLs, as subscribers.schedule.Schedule.tiers_ms computes them."""
    delays = _durations(env, "RESULTBUS_DELIVERY_SCHEDULE", DEFAULT_DELIVERY_SCHEDULE)
    park = DEFAULT_DELIVERY_PARK
    with contextlib.suppress(ValueError):
        park = parse_duration(env.get("RESULTBUS_DELIVERY_PARK") or "") or park
    return tiers_ms(d for d in (*delays[1:], park) if d > 0)


def itep_tiers_ms(env: Mapping[str, str]) -> list[int]:
    """The fulfillment delay tiers' TTLs, as workers.fulfillment.broker names them."""
    delays = _durations(env, "RESULTBUS_ITEP_RETRY_DELAYS", DEFAULT_ITEP_RETRY_DELAYS)
    return tiers_ms(delays)


def queues_of(topology: Topology, env: Mapping[str, str]) -> list[Queue]:
    """`queues`, with every tier named from `env` as the roles name them."""
    raw_delays = RETRY_DELAYS.default
    with contextlib.suppress(SettingError):
        raw_delays = RETRY_DELAYS.read(env)
    return queues(topology, raw_delays, delivery_tiers_ms(env), itep_tiers_ms(env))


def queues(
    topology: Topology, raw_delays: Sequence[float], delivery_tiers: Sequence[int], itep_tiers: Sequence[int]
) -> list[Queue]:
    """Every queue of the deployment, in the order a pipeline's message meets them: the routers'
    delay tiers in seconds, the delivery workers' and fulfillment's in milliseconds."""
    return [
        Queue("raw", topology.raw.name, "router"),
        *(Queue("raw retry", topology.raw.tier(ms)) for ms in tiers_ms(raw_delays)),
        Queue("raw dead", topology.raw.dead),
        Queue("delivery", topology.deliveries.name, "delivery"),
        Queue("delivery", topology.delivery_attempts.name, "delivery"),
        *(Queue("delivery retry", topology.delivery_attempts.tier(ms)) for ms in delivery_tiers),
        Queue("delivery dead", topology.delivery_attempts.dead),
        Queue("itep orders", topology.itep_orders.name, "fulfillment"),
        Queue("itep fulfillment", topology.itep_fulfillment.name, "fulfillment"),
        *(Queue("itep retry", topology.itep_fulfillment.tier(ms)) for ms in itep_tiers),
        Queue("itep dead", topology.itep_fulfillment.dead),
    ]


def exchanges(topology: Topology) -> list[str]:
    return [topology.raw_exchange, topology.results_exchange]


class QueueDepth(msgspec.Struct, frozen=True):
    queue: Queue
    messages: int | None  # ready messages; None: the queue is not declared (its role never started)
    consumers: int | None


async def passive_depths(connection: AbstractConnection, wanted: Sequence[Queue]) -> list[QueueDepth]:
    """Each queue's ready messages and consumers, by passive declares over AMQP: nothing is created,
    and the management plugin is not needed."""
    found: list[QueueDepth] = []
    channel = await connection.channel(publisher_confirms=False)
    try:
        for queue in wanted:
            try:
                declared = await channel.declare_queue(queue.name, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                # The broker closes a channel on a passive declare of a missing queue.
                found.append(QueueDepth(queue, None, None))
                channel = await connection.channel(publisher_confirms=False)
                continue
            result = declared.declaration_result
            found.append(QueueDepth(queue, result.message_count, result.consumer_count))
    finally:
        if not channel.is_closed:
            await channel.close()
    return found


class _ManagementQueue(msgspec.Struct):
    name: str
    messages_unacknowledged: int = 0


_management_queues = msgspec.json.Decoder(list[_ManagementQueue])


def unacked_of(payload: bytes) -> dict[str, int]:
    """Unacked messages per queue, from the management API's `GET /api/queues/<vhost>` answer."""
    return {q.name: q.messages_unacknowledged for q in _management_queues.decode(payload)}


async def management_unacked(api: str, amqp_url: str, *, within: float = 3.0) -> tuple[dict[str, int], str]:
    """Unacked messages per queue of the AMQP URL's virtual host, read from RabbitMQ's management API
    at `api` (`http://user:password@host:15672/`), and a note saying where they came from. AMQP
    itself does not tell them; without `api`, none (and the note says how to have them)."""
    if not api.strip():
        return {}, (
            "unacked: not known over AMQP; set RESULTBUS_RABBITMQ_API to the management API"
            " (http://user:password@host:15672/) to see them"
        )
    base = URL(api.strip())
    shown = str(base.with_user(None).with_password(None))
    vhost = URL(amqp_url.split(",")[0].strip()).path.removeprefix("/") or "/"
    url = URL(f"{shown.rstrip('/')}/api/queues/{quote(vhost, safe='')}", encoded=True)
    auth = aiohttp.BasicAuth(base.user or "guest", base.password or "guest")
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=within)) as http,
            http.get(url.with_query(columns="name,messages_unacknowledged"), auth=auth) as response,
        ):
            if response.status != 200:
                return {}, f"unacked: the management API at {shown} answered HTTP {response.status}"
            return unacked_of(await response.read()), f"unacked from the management API at {shown}"
    except (aiohttp.ClientError, OSError, TimeoutError, msgspec.MsgspecError) as error:
        return {}, f"unacked: the management API at {shown} did not answer ({type(error).__name__})"
