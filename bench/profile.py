"""`python -m bench.profile ingress|baseline|router|delivery [SECONDS]`: py-spy samples of one process
under the bench's load, summarised as the functions holding the most samples (own time and inclusive).

ingress: the loadgen at 64 connections against an ingress, as in the bench's ingress row;
baseline: the same load against that row's baseline (bench/baseline_ingress.py), to compare with;
router: a pre-filled raw queue of 20,000 mixed webhooks drained by one router;
delivery: 2,000 events to 10 live subscribers.
The raw py-spy output is kept in bench/results/profile-<which>.txt (collapsed stacks).
"""

import argparse
import asyncio
import collections
import sys
from pathlib import Path

import aiohttp

from bench import delivery, router
from bench.ingress import load
from bench.net import free_port, wait_ok
from bench.payloads import INSPERA_SECRET, INSPERA_SOURCE
from bench.stack import sources_file
from bench.world import ROOT, Process, world

RESULTS = ROOT / "bench" / "results"


async def _spy(process: Process, seconds: float, output: Path) -> asyncio.subprocess.Process:
    spy = Path(sys.executable).with_name("py-spy")
    return await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(process.proc.pid), "--duration", str(int(seconds)), "--rate", "200",
        "--format", "raw", "--output", str(output), "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def _server(args: list[str], seconds: float, output: Path) -> None:
    """One server of the bench's ingress row, sampled while the load generator runs against it."""
    with sources_file() as sources:
        async with world() as w:
            port = free_port()
            env = w.env(
                RESULTBUS_SOURCES=str(sources),
                RESULTBUS_INGRESS_HOST="127.0.0.1",
                RESULTBUS_INGRESS_PORT=str(port),
                RESULTBUS_BENCH_INSPERA_SECRET=INSPERA_SECRET,
            )
            server = await Process.start(args[0], [a.replace("PORT", str(port)) for a in args], env)
            try:
                await wait_ok(server, f"http://127.0.0.1:{port}/readyz")
                spy = await _spy(server, seconds, output)
                await load(f"http://127.0.0.1:{port}/hooks/{INSPERA_SOURCE}", 40_000, 64, 500, 120.0)
                await spy.wait()
            finally:
                await server.stop()


async def ingress(seconds: float, output: Path) -> None:
    await _server(["ingress"], seconds, output)


async def baseline(seconds: float, output: Path) -> None:
    await _server(["bench.baseline_ingress", "PORT"], seconds, output)


async def router_profile(seconds: float, output: Path) -> None:
    await router.router(20_000, router.Config(256, 512), 300.0, str(output))


async def delivery_profile(seconds: float, output: Path) -> None:
    subscribers = await delivery.Subscribers.start(10, "none")
    try:
        async with world() as w, aiohttp.ClientSession() as session:
            env = w.env(RESULTBUS_ALLOW_PRIVATE_ENDPOINTS="1", RESULTBUS_SHUTDOWN_TIMEOUT="3")
            w.extra_queues.extend(
                delivery.delivery_queue_names(w.topology, delivery.DeliverySettings.from_env(env).schedule)
            )
            await delivery.run_to_end("migrate", ["workers", "migrate"], env)
            await delivery._subscribe(w, subscribers.urls())
            worker = await Process.start("delivery", ["workers", "delivery"], env)
            try:
                await delivery._worker_ready(w, worker)
                spy = await _spy(worker, seconds, output)
                await delivery._publish(w, await delivery._stored(w, delivery._events(2_000)), None)
                await subscribers.wait_for(session, 2_000 * 10, 300.0)
                await spy.wait()
            finally:
                await worker.stop()
    finally:
        await subscribers.process.stop()


def summary(raw: Path, top: int = 25) -> list[str]:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stacks, _, count = line.rpartition(" ")
        if not stacks:
            continue
        n = int(count)
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1]
            for f in stacks.split(";")
        ]
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{total} samples", "own time:"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["inclusive:"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top * 2)]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "which", choices=["ingress", "baseline", "router", "delivery"], help="the process to sample"
    )
    parser.add_argument(
        "seconds", nargs="?", type=float, default=10.0, help="how long py-spy samples (default 10)"
    )
    args = parser.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    output = RESULTS / f"profile-{args.which}.txt"
    run = {
        "ingress": ingress,
        "baseline": baseline,
        "router": router_profile,
        "delivery": delivery_profile,
    }[args.which]
    asyncio.run(run(args.seconds, output))
    print("\n".join(summary(output)))


if __name__ == "__main__":
    main()
