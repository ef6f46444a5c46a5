"""Several broker addresses: two TCP proxies of our own stand for two nodes of a cluster in front of
the one local broker; cutting one must move the connection, its robust channel and its consumer to
the other."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from common.amqp import FailoverConnection, connect_robust, parse_urls, redact_urls
from devkit.proxy import TcpProxy
from schemas.topology import Topology
from tests.support.services import scratch_queue_name


def test_parse_urls_splits_a_comma_separated_list_in_order() -> None:
    urls = parse_urls(" amqp://u:p@rabbit-0:5672/rb , amqps://u:p@rabbit-1/rb?heartbeat=10,")
    assert [(u.scheme, u.host, u.port, u.path) for u in urls] == [
        ("amqp", "rabbit-0", 5672, "/rb"),
        ("amqps", "rabbit-1", None, "/rb"),
    ]
    assert urls[1].query["heartbeat"] == "10"
    assert parse_urls(["amqp://a/"]) == parse_urls("amqp://a/")


@pytest.mark.parametrize("value", ["", " , ", "http://rabbit/", "amqp:///vhost"])
def test_parse_urls_refuses_what_is_not_a_broker_address(value: str) -> None:
    with pytest.raises(ValueError):
        parse_urls(value)


def test_a_bad_address_is_named_without_its_password() -> None:
    with pytest.raises(ValueError) as raised:
        parse_urls("amqp://guest:s3cret@rabbit/,http://guest:s3cret@other/")
    assert "s3cret" not in str(raised.value)
    assert "other" in str(raised.value)


def test_every_address_is_redacted_in_a_list() -> None:
    shown = redact_urls("amqp://rb:first-secret@rabbit-0/,amqp://rb:second-secret@rabbit-1/")
    assert "secret" not in shown
    assert "rabbit-0" in shown and "rabbit-1" in shown


def _via(port: int, amqp_url: str) -> str:
    parts = urlsplit(amqp_url)
    return f"amqp://{parts.username}:{parts.password}@127.0.0.1:{port}{parts.path or '/'}"


@dataclass
class Node:
    """One proxy standing for one node of the cluster."""

    proxy: TcpProxy
    port: int


@pytest.fixture
async def nodes(amqp_url: str) -> AsyncIterator[tuple[Node, Node]]:
    parts = urlsplit(amqp_url)
    proxies = [TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672) for _ in range(2)]
    first, second = [Node(proxy, await proxy.start()) for proxy in proxies]
    yield first, second
    for proxy in proxies:
        await proxy.close()


async def _expect(received: "asyncio.Queue[bytes]", body: bytes, *, earlier: set[bytes]) -> None:
    """Waits for `body`. An ack in flight when the link was cut may be lost, so a message received
    before may come again (at least once): that is allowed, anything else is not."""
    async with asyncio.timeout(15):
        while (got := await received.get()) != body:
            assert got in earlier, got
    earlier.add(body)


def _port(connection: aio_pika.abc.AbstractRobustConnection) -> int | None:
    assert isinstance(connection, FailoverConnection)
    return None if connection.current_url is None else connection.current_url.port


async def _closed_port() -> int:
    # A port nothing listens on: bind one, note it, close it.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()
    return port


async def test_connects_to_the_first_reachable_address(amqp_url: str) -> None:
    live = urlsplit(amqp_url).port or 5672
    connection = await connect_robust(f"{_via(await _closed_port(), amqp_url)},{_via(live, amqp_url)}")
    async with connection:
        assert _port(connection) == live
        channel = await connection.channel()
        assert not channel.is_closed


async def test_no_reachable_address_raises_the_connection_error(amqp_url: str) -> None:
    urls = [_via(await _closed_port(), amqp_url), _via(await _closed_port(), amqp_url)]
    with pytest.raises(ConnectionError):
        await connect_robust(urls, timeout=2)


async def test_cutting_a_node_moves_connection_channel_and_consumer_to_the_next(
    amqp_url: str, topology: Topology, nodes: tuple[Node, Node]
) -> None:
    first, second = nodes
    urls = ",".join(_via(node.port, amqp_url) for node in nodes)
    connection = await connect_robust(urls, reconnect_interval=0.2)
    queue_name = scratch_queue_name(topology, "failover")
    received: asyncio.Queue[bytes] = asyncio.Queue()
    reconnected = asyncio.Event()
    connection.reconnect_callbacks.add(lambda *_: reconnected.set())

    async def on_message(message: AbstractIncomingMessage) -> None:
        async with message.process():
            await received.put(message.body)

    direct = await aio_pika.connect(amqp_url)
    async with connection, direct:
        assert _port(connection) == first.port
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
        await queue.consume(on_message)
        sender = await direct.channel()
        await sender.default_exchange.publish(aio_pika.Message(b"before"), routing_key=queue_name)
        seen: set[bytes] = set()
        await _expect(received, b"before", earlier=seen)

        first.proxy.cut()  # the node goes away, and stays away
        async with asyncio.timeout(15):
            await reconnected.wait()
        assert _port(connection) == second.port

        # The consumer is back on the new node: a message published now reaches it.
        await sender.default_exchange.publish(aio_pika.Message(b"after"), routing_key=queue_name)
        await _expect(received, b"after", earlier=seen)

        # And when the second goes away too while the first is back, it moves on again (round robin).
        reconnected.clear()
        first.proxy.restore()
        second.proxy.cut()
        async with asyncio.timeout(15):
            await reconnected.wait()
        assert _port(connection) == first.port
        await sender.default_exchange.publish(aio_pika.Message(b"again"), routing_key=queue_name)
        await _expect(received, b"again", earlier=seen)
