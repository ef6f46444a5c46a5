"""Consuming a queue with one task per message, so that a slow handler never holds up the next
message. The channel's prefetch is the bound on messages in hand; on stop, consuming ends, the
messages in hand get `drain` seconds to finish, and what is left is cancelled (and, once the channel
closes, returned to the queue by the broker)."""

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from workers.delivery.broker import requeue_pause

log = structlog.get_logger("delivery")

Handler = Callable[[AbstractIncomingMessage], Awaitable[None]]


class TaskPerMessage:
    def __init__(self, queue: AbstractQueue, handler: Handler) -> None:
        self._queue = queue
        self._handler = handler
        self._tasks: set[asyncio.Task[None]] = set()
        self._tag: str | None = None

    async def start(self) -> None:
        self._tag = await self._queue.consume(self._receive)

    async def _receive(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.create_task(self._run(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, message: AbstractIncomingMessage) -> None:
        # Each message starts from a clean logging context (tasks copy the consumer's context).
        structlog.contextvars.clear_contextvars()
        try:
            await self._handler(message)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug, not an outcome: log it and give the message back after a pause (no spinning).
            log.exception("message handler failed", queue=self._queue.name)
            await asyncio.sleep(requeue_pause(message, 1.0))
            await message.nack(requeue=True)

    async def stop(self, drain: float) -> None:
        if self._tag is not None:
            await self._queue.cancel(self._tag)
            self._tag = None
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=drain)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
