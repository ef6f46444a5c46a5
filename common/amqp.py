"""Connecting to a RabbitMQ cluster by several addresses.

`RESULTBUS_AMQP_URL` may list more than one node, comma-separated. The connection goes to the first
that answers; when it is lost, aio-pika's robust reconnect tries the node after the one it lost,
then the others in turn, so a node taken away for maintenance costs one reconnect, not an outage.
Channels, declared queues and consumers are restored on the new node as aio-pika restores them on
the old one (quorum queues are replicated, so they are there).

A comma inside a URL (in a password, say) must be percent-encoded as `%2C`.
"""

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import aiormq
import structlog
from aio_pika.abc import AbstractRobustConnection, TimeoutType
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from aio_pika.robust_connection import RobustConnection
from yarl import URL

log = structlog.get_logger("amqp")

# aio-pika has no public hook for "about to make a connection attempt": its reconnect loop calls
# this private method once per attempt, and nothing else. Overriding it is the narrowest change that
# picks the address; checked here so that an aio-pika that renames it fails at import, not at 3 a.m.
_ATTEMPT = "_RobustConnection__connect_transport"
if not callable(getattr(RobustConnection, _ATTEMPT, None)):  # pragma: no cover - version guard
    raise ImportError(f"aio_pika.RobustConnection has no {_ATTEMPT}: common/amqp.py needs updating")


# aiormq buffers 10 frames per channel, and 10 outgoing per connection. The connection's reader waits
# whenever one channel's buffer is full, so every channel of the connection gets at most ten frames
# per turn of the event loop: in a worker consuming two queues with a deep prefetch, the confirms of
# its publishing channel queued behind the deliveries, and publishes took 200-700 ms on a broker that
# confirmed them in 2. Deep buffers cost nothing more: the prefetch and the publishes in flight bound
# what can be in them. aio-pika opens channels without a size, so the default is what is raised.
FRAME_BUFFER = 4096
_channel = aiormq.Connection.channel
if "frame_buffer_size" not in inspect.signature(_channel).parameters:  # pragma: no cover - version guard
    raise ImportError("aiormq.Connection.channel has no frame_buffer_size: common/amqp.py needs updating")


async def _deep_channel(
    self: aiormq.Connection,
    channel_number: int | None = None,
    publisher_confirms: bool = True,
    frame_buffer_size: int = FRAME_BUFFER,
    timeout: TimeoutType = None,  # noqa: ASYNC109 - aiormq's own parameter
    **kwargs: Any,
) -> aiormq.abc.AbstractChannel:
    return await _channel(self, channel_number, publisher_confirms, frame_buffer_size, timeout, **kwargs)


aiormq.Connection.FRAME_BUFFER_SIZE = FRAME_BUFFER  # the connection's outgoing queue, read per connection
aiormq.Connection.channel = _deep_channel  # type: ignore[method-assign]


class _CoalescingWriter:
    """aiormq writes each frame to the socket as it takes it from its queue: a send() per publish and
    per ack, and a segment each for the broker to read. The frames written in one turn of the event
    loop go out in one write instead (measured: RabbitMQ's CPU per message published, consumed and
    acked through a quorum queue, 20,000 with 200 in flight, 130 -> 80 us)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._writer.is_closing():
                self._writer.write(data)

    async def drain(self) -> None:
        self._flush()
        await self._writer.drain()

    def write_eof(self) -> None:
        self._flush()
        self._writer.write_eof()

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


def _coalescing(create: Any) -> Any:
    async def create_coalescing(self: Any, url: URL, **kwargs: Any) -> tuple[asyncio.StreamReader, Any]:
        reader, writer = await create(self, url, **kwargs)
        return reader, _CoalescingWriter(writer)

    return create_coalescing


# Every connection aiormq makes, TCP or TLS, gets one.
for _factory in (aiormq.connection.TCPTransportFactory, aiormq.connection.TLSTransportFactory):
    _factory.create = _coalescing(_factory.create)  # type: ignore[method-assign]


def parse_urls(urls: str | Sequence[str]) -> list[URL]:
    """`"amqp://a/,amqp://b/"` or a list of them: the addresses in order, blanks dropped."""
    items = urls.split(",") if isinstance(urls, str) else list(urls)
    parsed = [URL(item.strip()) for item in items if item.strip()]
    if not parsed:
        raise ValueError("no broker address given")
    for url in parsed:
        if url.scheme not in ("amqp", "amqps") or not url.host:
            raise ValueError(f"not an amqp:// or amqps:// address: {redact(url)}")
    return parsed


def redact(url: URL) -> str:
    return str(url.with_password("***")) if url.password else str(url)


def redact_urls(urls: str | Sequence[str]) -> str:
    """Every address of the list without its password, for logs and error messages (a single-URL
    redaction would leak the passwords after the first comma)."""
    items = urls.split(",") if isinstance(urls, str) else list(urls)
    return ",".join(redact(URL(item.strip())) for item in items if item.strip())


class FailoverConnection(RobustConnection):
    """A robust connection over several addresses: each connection attempt tries every address once,
    starting with the one after the address last connected to (the first address the first time)."""

    def __init__(self, urls: Sequence[URL], **kwargs: Any) -> None:
        # Connection parameters (heartbeat, reconnect_interval, …) come from the first address's
        # query and the keyword arguments; list the same query on every address.
        super().__init__(urls[0], **kwargs)
        self.urls = tuple(urls)
        self._current: int | None = None

    @property
    def current_url(self) -> URL | None:
        """The address of the live (or last) connection."""
        return None if self._current is None else self.urls[self._current]

    async def _RobustConnection__connect_transport(self) -> None:
        attempt = cast(Callable[[], Awaitable[None]], getattr(super(), _ATTEMPT))
        previous = self._current
        start = 0 if previous is None else previous + 1
        failure: BaseException | None = None
        for step in range(len(self.urls)):
            index = (start + step) % len(self.urls)
            self.url = self.urls[index]
            # Set before the attempt: reconnect callbacks run inside it and may ask where we are.
            self._current = index
            try:
                await attempt()
            except CONNECTION_EXCEPTIONS as error:
                failure = error
                log.warning("broker address not reachable", address=redact(self.url), error=repr(error))
                continue
            if previous is not None:
                log.warning("broker reconnected", address=redact(self.url), moved=index != previous)
            return
        self._current = previous
        assert failure is not None
        raise failure


async def connect_robust(
    urls: str | Sequence[str],
    *,
    timeout: TimeoutType = None,  # noqa: ASYNC109 - per address, handed to aio-pika as its own is
    **kwargs: Any,
) -> AbstractRobustConnection:
    """Like `aio_pika.connect_robust`, over one or several addresses (a comma-separated string or a
    list). Raises the last address's error when none is reachable at the first attempt; after that,
    reconnects forever. `timeout` is per address; other keyword arguments go to the connection
    (`reconnect_interval=…`, `client_properties=…`)."""
    connection = FailoverConnection(parse_urls(urls), **kwargs)
    try:
        await connection.connect(timeout=timeout)
    except BaseException:
        # A first connection given up (failed, or cancelled by a SIGTERM during start-up): without
        # `close`, aio-pika's reconnect loop lives on in the background and keeps the process from
        # exiting (asyncio's shutdown waits for it, and it answers a cancel with another attempt).
        with contextlib.suppress(Exception):
            await connection.close()
        raise
    return connection
