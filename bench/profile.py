"""`python -m bench.profile ingress|router|delivery [SECONDS]`: py-spy samples of one process under
the bench's load, summarised as the functions holding the most samples (own time and inclusive).

ingress: the loadgen at 64 connections against an ingress (router beside it);
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

from bench import delivery, router, stack
from bench.ingress import load
from bench.world import ROOT, Process, world

RESULTS = ROOT / "bench" / "results"


async def _spy(process: Process, seconds: float, output: Path) -> asyncio.subprocess.Process:
    spy = Path(sys.executable).with_name("py-spy")
    return await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(process.proc.pid), "--duration", str(int(seconds)), "--rate", "200",
        "--format", "raw", "--output", str(output), "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def ingress(seconds: float, output: Path) -> None:
    async with world() as w, stack.resultbus(w, ["router"]) as s:
        spy = await _spy(s.processes[0], seconds, output)
        await load(s.url, 40_000, 64, 500, 120.0)
        await spy.wait()


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
    parser.add_argument("which", choices=["ingress", "router", "delivery"], help="the process to sample")
    parser.add_argument(
        "seconds", nargs="?", type=float, default=10.0, help="how long py-spy samples (default 10)"
    )
    args = parser.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    output = RESULTS / f"profile-{args.which}.txt"
    run = {"ingress": ingress, "router": router_profile, "delivery": delivery_profile}[args.which]
    asyncio.run(run(args.seconds, output))
    print("\n".join(summary(output)))


if __name__ == "__main__":
    main()
