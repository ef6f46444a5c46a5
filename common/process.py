"""What every process's entry point does the same way: stop on a signal, run on uvloop."""

import asyncio
import contextlib
import signal


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM (a container stopping) or SIGINT (Ctrl-C): the start of a graceful
    shutdown, never an abrupt one."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def use_uvloop() -> None:
    """uvloop where it is installed (not on every platform): a faster event loop, same behaviour."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
