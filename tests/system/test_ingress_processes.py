"""`python -m ingress` with RESULTBUS_INGRESS_PROCESSES=2 (issue 23): two processes share the port,
both answer (their own counts in the supervisor's /metrics, one log line per request), SIGTERM
drains both (a request in flight in each still answered 200 after its confirm) and the exit is
clean; a process that dies stops the whole with exit 1; a supervisor killed outright takes its
processes with it."""

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import aiohttp

from schemas.topology import Topology
from tests.support.real_ingress import RealIngress, real_ingress

BODY = b'{"event": "attempt.completed", "id": "a-1"}'
HEAD = (
    f"POST /hooks/synap-main HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    f"Content-Length: {len(BODY)}\r\n\r\n"
).encode()


@contextlib.asynccontextmanager
async def two_processes(
    amqp_url: str, topology: Topology, tmp_path: Path, processes: int = 2
) -> AsyncIterator[RealIngress]:
    """The supervisor, once both processes are ready (its /readyz); stopped at the end if the test
    did not stop it. (`processes=1`: the one process, no supervisor.)"""
    async with real_ingress(
        amqp_url, topology, tmp_path, stays_up=False, RESULTBUS_INGRESS_PROCESSES=str(processes)
    ) as ingress:
        if processes > 1:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{ingress.metrics_port}/readyz") as response,
            ):
                assert await response.json() == {
                    "status": "ready", "role": "ingress", "processes": 2, "ready": 2
                }  # fmt: skip
        yield ingress


async def queued(amqp_url: str, topology: Topology) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        queue = await (await connection.channel()).declare_queue(topology.raw_queue, passive=True)
        return queue.declaration_result.message_count or 0


async def post_on_a_new_connection(port: int) -> int:
    # A connection of its own each: the kernel picks the process per connection.
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
        http.post(
            f"http://127.0.0.1:{port}/hooks/synap-main",
            data=BODY,
            headers={"Content-Type": "application/json"},
        ) as response,
    ):
        return response.status


def pids(ingress: RealIngress) -> list[int]:
    (started,) = [line for line in ingress.lines() if line.get("event") == "ingress processes started"]
    return list(started["pids"])


def gone(pid: int) -> bool:
    """Exited (a zombie nobody reaped counts as gone: it holds no port)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


async def test_both_processes_answer_each_counted_and_logged_and_sigterm_drains_both(
    amqp_url: str, topology: Topology, tmp_path: Path
) -> None:
    async with two_processes(amqp_url, topology, tmp_path) as ingress:
        listening = [line for line in ingress.lines() if line.get("event") == "ingress listening"]
        assert sorted(line["process"] for line in listening) == [0, 1]
        assert {line["port"] for line in listening} == {ingress.port}
        assert len(set(pids(ingress))) == 2

        statuses = await asyncio.gather(*(post_on_a_new_connection(ingress.port) for _ in range(40)))
        assert statuses == [200] * 40
        first = await ingress.metric("resultbus_ingress_requests_total", status="200", process="0")
        second = await ingress.metric("resultbus_ingress_requests_total", status="200", process="1")
        assert first > 0 and second > 0 and first + second == 40, (first, second)
        assert await ingress.metric("resultbus_ready", process="0") == 1.0
        assert await ingress.metric("resultbus_ready", process="1") == 1.0
        assert await ingress.metric("resultbus_ingress_processes") == 2.0
        requests = [line for line in ingress.lines() if line.get("event") == "request"]
        assert len(requests) == 40 and {line["status"] for line in requests} == {200}

        # A request in flight in each process: connections opened until both hold one, each with
        # its body half sent.
        held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        async with asyncio.timeout(20):
            while not all(
                [
                    await ingress.metric("resultbus_http_connections", process=p, listener="ingress") > 0
                    for p in ("0", "1")
                ]
            ):
                reader, writer = await ingress.connect()
                writer.write(HEAD + BODY[:10])
                await writer.drain()
                held.append((reader, writer))
                await asyncio.sleep(0.1)

        ingress.process.send_signal(signal.SIGTERM)
        async with aiohttp.ClientSession() as http, asyncio.timeout(10):
            while True:  # unready at once
                async with http.get(f"http://127.0.0.1:{ingress.metrics_port}/readyz") as response:
                    if response.status == 503:
                        break
                await asyncio.sleep(0.05)
        answers = []
        for reader, writer in held:
            writer.write(BODY[10:])
            await writer.drain()
            answers.append((await asyncio.wait_for(reader.readline(), 10)).split(b" ")[1])
            writer.close()
        assert answers == [b"200"] * len(held), (len(held), answers)
        async with asyncio.timeout(30):
            assert await ingress.process.wait() == 0, ingress.stderr.read_text()
        lines = ingress.lines()
        assert sum(line.get("event") == "shutting down" for line in lines) == 2
        assert sum(line.get("event") == "stopped" for line in lines) == 2
        (stopped,) = [line for line in lines if line.get("event") == "ingress processes stopped"]
        assert stopped["exit_codes"] == [0, 0]
        assert not [line for line in lines if line.get("level") in ("error", "not-json")], lines
        assert all(gone(pid) for pid in pids(ingress))
    assert await queued(amqp_url, topology) == 40 + len(held)


async def test_a_process_that_dies_stops_the_other_and_the_exit_is_1(
    amqp_url: str, topology: Topology, tmp_path: Path
) -> None:
    async with two_processes(amqp_url, topology, tmp_path) as ingress:
        first, second = pids(ingress)
        os.kill(second, signal.SIGKILL)
        async with asyncio.timeout(30):
            assert await ingress.process.wait() == 1
        (died,) = [line for line in ingress.lines() if line.get("level") == "error"]
        assert died["event"] == "an ingress process exited by itself: stopping the others"
        assert (died["process"], died["pid"], died["exit_code"]) == (1, second, -signal.SIGKILL)
        assert gone(first)  # stopped in its order, not left holding the port
        assert sum(line.get("event") == "stopped" for line in ingress.lines()) == 1


async def test_a_supervisor_killed_outright_takes_its_processes_with_it(
    amqp_url: str, topology: Topology, tmp_path: Path
) -> None:
    async with two_processes(amqp_url, topology, tmp_path) as ingress:
        children = pids(ingress)
        ingress.process.send_signal(signal.SIGKILL)
        await ingress.process.wait()
        async with asyncio.timeout(20):
            while not all(gone(pid) for pid in children):
                await asyncio.sleep(0.1)
        # Each stopped as on SIGTERM (the pipe from the supervisor read end-of-file), in its order.
        assert sum(line.get("event") == "stopped" for line in ingress.lines()) == 2


async def test_one_process_too_reads_a_body_still_arriving_at_sigterm_and_answers_200(
    amqp_url: str, topology: Topology, tmp_path: Path
) -> None:
    # Guards common/listener.py `data_received`: aiohttp drops what arrives once shutdown marks the
    # connection closing, so the rest of the body never came and the request ended in a 408.
    async with two_processes(amqp_url, topology, tmp_path, processes=1) as ingress:
        reader, writer = await ingress.connect()
        writer.write(HEAD + BODY[:10])
        await writer.drain()
        await asyncio.sleep(0.3)  # the headers read: the request is in its handler
        ingress.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        writer.write(BODY[10:])
        await writer.drain()
        status = (await asyncio.wait_for(reader.readline(), 5)).split(b" ")[1]
        writer.close()
        assert status == b"200"
        async with asyncio.timeout(30):
            assert await ingress.process.wait() == 0
    assert await queued(amqp_url, topology) == 1
