"""`python -m bench.instructions ingress|baseline [REQUESTS]`: the user-space instructions one server
of the ingress row executes per request, counted by valgrind's callgrind (`apt-get install valgrind`).

On a machine whose cores are shared, a rate or a CPU time moves by ±30 % from round to round with
what else runs; an instruction count does not (about ±2 % here), so it tells whether a change to the
ingress's own work helped, one change at a time. It does not count the kernel's side (socket reads
and writes, the same for both servers) nor what the machine's contention adds, so it complements the
bench's rates; it never replaces them.

The server runs under callgrind (about 50 times slower), is warmed up with 300 requests, then its
counters are reset and REQUESTS more (default 1,000, 64 connections) counted. Under callgrind the
server is the slowest part, so at 64 connections each turn of its event loop serves many requests;
`--concurrency 1` counts a request per turn, what a lightly loaded server pays.
"""

import argparse
import asyncio
import os
import re
import sys
import tempfile
from pathlib import Path

from bench.ingress import load
from bench.net import free_port, wait_ok
from bench.payloads import INSPERA_SECRET, INSPERA_SOURCE
from bench.stack import sources_file
from bench.world import ROOT, Process, world

WARMUP = 300


async def _control(pid: int, dump: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "callgrind_control",
        f"--dump={dump}",
        str(pid),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()


async def _start(label: str, tool: list[str], args: list[str], env: dict[str, str]) -> Process:
    """`python -m ARGS` under `tool`, as bench.world.Process runs it (its output in a file)."""
    fd, log = tempfile.mkstemp(prefix=f"bench-{label}-", suffix=".log")
    try:
        proc = await asyncio.create_subprocess_exec(
            *tool, sys.executable, "-m", *args, cwd=ROOT, env=env, stdout=fd, stderr=fd
        )
    finally:
        os.close(fd)
    return Process(proc, Path(log), label)


def _total(path: Path) -> int:
    match = re.search(r"^summary: (\d+)$", path.read_text(errors="replace"), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no summary in {path}")
    return int(match[1])


async def count(which: str, requests: int, concurrency: int = 64) -> float:
    """Instructions per request of `which` (ingress or baseline)."""
    with sources_file() as sources, tempfile.TemporaryDirectory(prefix="bench-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        async with world() as w:
            port = free_port()
            env = w.env(
                RESULTBUS_SOURCES=str(sources),
                RESULTBUS_INGRESS_HOST="127.0.0.1",
                RESULTBUS_INGRESS_PORT=str(port),
                RESULTBUS_BENCH_INSPERA_SECRET=INSPERA_SECRET,
                # Under callgrind a confirm takes longer than the default 2 s allows under load.
                RESULTBUS_CONFIRM_TIMEOUT="60",
            )
            server = ["bench.baseline_ingress", str(port)] if which == "baseline" else ["ingress"]
            process = await _start(
                which, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"], server, env
            )
            try:
                await wait_ok(process, f"http://127.0.0.1:{port}/readyz", timeout=300.0)
                url = f"http://127.0.0.1:{port}/hooks/{INSPERA_SOURCE}"
                await load(url, WARMUP, 64, 0, 900.0)
                await _control(process.proc.pid, "warm")  # from here on, only the counted requests
                result = await load(url, requests, concurrency, 0, 1800.0)
                await _control(process.proc.pid, "counted")
                process.check_alive()
            finally:
                await process.stop(60.0)
            if result.ok != requests:
                raise RuntimeError(f"{which}: {result.ok} of {requests} answered 200 ({result.statuses})")
            # callgrind numbers its dumps: .1 is the warm-up, .2 the counted requests.
            return _total(out.with_name(out.name + ".2")) / requests


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instructions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("which", choices=["ingress", "baseline", "both"], help="the server to count")
    parser.add_argument("requests", nargs="?", type=int, default=1_000, help="requests counted")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="connections (default 64, as the row; 1 counts what each loop turn costs per request)",
    )
    args = parser.parse_args(argv)
    figures = {}
    for which in ("baseline", "ingress") if args.which == "both" else (args.which,):
        figures[which] = asyncio.run(count(which, args.requests, args.concurrency))
        print(f"{which}: {figures[which]:,.0f} instructions per request", flush=True)
    if len(figures) == 2:
        print(f"ratio ingress / baseline: {figures['ingress'] / figures['baseline']:.3f}")


if __name__ == "__main__":
    main()
