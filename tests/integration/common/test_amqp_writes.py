"""The broker connection's writes (common/amqp.py): what aiormq writes in one turn of the event loop
goes out in one write, in order, and nothing written is left behind by a drain or a close."""

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import pytest

from common.amqp import _CoalescingWriter, connect_robust
from schemas.topology import Topology
from tests.support.services import scratch_queue_name


@pytest.fixture
async def loopback() -> AsyncIterator[tuple[asyncio.StreamWriter, list[bytes], asyncio.Event]]:
    received: list[bytes] = []
    ended = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.append(data)
        ended.set()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    yield writer, received, ended
    writer.close()
    server.close()
    await server.wait_closed()


async def test_what_is_written_in_one_turn_goes_out_in_one_write_in_order(
    loopback: tuple[asyncio.StreamWriter, list[bytes], asyncio.Event],
) -> None:
    writer, _, _ = loopback
    writes: list[bytes] = []
    write = writer.write

    def counted(data: bytes) -> None:
        writes.append(bytes(data))
        write(data)

    writer.write = counted  # type: ignore[method-assign,assignment]
    coalescing = _CoalescingWriter(writer)
    for frame in (b"frame-1;", b"frame-2;", b"frame-3;"):
        coalescing.write(frame)
    assert writes == []  # not yet: at the end of this turn
    await asyncio.sleep(0)
    assert writes == [b"frame-1;frame-2;frame-3;"]
    coalescing.write(b"frame-4;")
    await coalescing.drain()  # a drain sends what is pending first
    assert writes[-1] == b"frame-4;"


async def test_a_close_sends_what_was_written_before_it(
    loopback: tuple[asyncio.StreamWriter, list[bytes], asyncio.Event],
) -> None:
    writer, received, ended = loopback
    coalescing = _CoalescingWriter(writer)
    coalescing.write(b"last frame before the close")
    coalescing.close()  # in the same turn: aiormq writes Connection.Close, then closes
    await asyncio.wait_for(ended.wait(), 5.0)
    assert b"".join(received) == b"last frame before the close"


async def test_a_burst_of_publishes_and_acks_through_the_broker_arrives_whole(
    amqp_url: str, topology: Topology
) -> None:
    connection = await connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(scratch_queue_name(topology, "writes"), exclusive=True)
        bodies = [f"message {n}".encode() for n in range(500)]
        await asyncio.gather(
            *(channel.default_exchange.publish(aio_pika.Message(b), queue.name) for b in bodies)
        )
        got: list[bytes] = []
        async with queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                got.append(message.body)
                if len(got) == len(bodies):
                    break
        assert got == bodies
        await asyncio.sleep(0.2)
        declared = await channel.declare_queue(queue.name, passive=True)
        assert declared.declaration_result.message_count == 0  # every ack reached the broker
