"""Running a devkit server as a process (`make run` starts them beside the pipeline): until SIGTERM or
SIGINT, and a port already in use said in one line (exit 2) rather than a traceback."""

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable


async def until_stopped(
    name: str,
    port: int,
    start: Callable[[], Awaitable[str]],
    close: Callable[[], Awaitable[None]],
    variable: str,
) -> None:
    """Starts (`start` answers what to print), waits for a signal, closes."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        said = await start()
    except OSError as error:
        if error.errno is None:
            raise
        print(
            f"{name}: cannot listen on port {port}: {os.strerror(error.errno)} (is `make run` running? it"
            f" runs one on {variable}: use that one, or give another --port)",
            file=sys.stderr,
        )
        sys.exit(2)
    print(said, flush=True)
    with contextlib.suppress(asyncio.CancelledError):
        await stop.wait()
    await close()
