"""`python -m ingress.process --index I --health-fd F --parent-fd P`: one of the ingress processes
that ingress/supervisor.py starts, never run by hand.

The same process as `python -m ingress` alone (its settings, its shutdown order), with two
differences: its listener shares the port with the others (SO_REUSEPORT), and its /healthz, /readyz
and /metrics are served on the loopback socket the supervisor bound for it (descriptor F), which the
supervisor asks and serves on RESULTBUS_METRICS_PORT for all of them. Descriptor P is the read end of
a pipe the supervisor holds open: it reads end-of-file once the supervisor is gone (killed outright,
say), and this process then shuts down as on SIGTERM rather than live on holding the port.
"""

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Sequence

from common.service import Service, serve
from ingress.__main__ import DESCRIPTION, Loaded, read_settings, start_ingress
from ingress.settings import SETTINGS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingress.process", description=__doc__)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--health-fd", type=int, required=True)
    parser.add_argument("--parent-fd", type=int, required=True)
    args = parser.parse_args(argv)
    health = socket.socket(fileno=args.health_fd)

    async def start(service: Service, loaded: Loaded) -> None:
        _stop_with_the_supervisor(service, args.parent_fd)
        await start_ingress(service, loaded, index=args.index)

    return serve(
        "ingress",
        description=DESCRIPTION,
        settings=[SETTINGS],
        read_settings=read_settings,
        start=start,
        argv=[],
        health_socket=health,
    )


def _stop_with_the_supervisor(service: Service, parent_fd: int) -> None:
    loop = asyncio.get_running_loop()

    def readable() -> None:
        if not os.read(parent_fd, 64):  # end of file: the supervisor is gone
            loop.remove_reader(parent_fd)
            os.kill(os.getpid(), signal.SIGTERM)  # the ordinary shutdown, in its order

    loop.add_reader(parent_fd, readable)

    async def close() -> None:
        loop.remove_reader(parent_fd)

    service.on_close(close)


if __name__ == "__main__":
    sys.exit(main())
