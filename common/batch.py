"""Gathering the database calls of concurrent tasks into one round trip.

The delivery worker's attempts each read their delivery's state before the POST and record the attempt
after it. Done one by one, that is two round trips and one commit (one WAL flush) per attempt, and the
worker spends more time waiting on PostgreSQL than on subscribers. A `Batch` collects the calls made within a few
moment and runs them as one statement; each caller gets its own result, or the statement's error,
when that statement is done. There is no timer to wait for: a call runs at once (with the calls made
in the same turn of the event loop) unless `parallel` groups are already running, and then it joins
the group that starts when one of those finishes. So a lone attempt pays no latency, and under load
the groups grow by themselves to what arrives during one statement. Nothing is acknowledged earlier
than before: a caller returns only after its group committed, so store -> publish -> ack holds.
"""

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batch(Generic[Item, Result]):
    """`await batch.submit(item)` -> `run`'s result for that item, `run` called on the group.

    `run(items)` returns one result per item, in order. `key(item)`, if given, names what an item
    touches: two items with the same key never share a group (the second starts the next group), so
    a statement never updates one row twice."""

    def __init__(
        self,
        run: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        key: Callable[[Item], Hashable] | None = None,
        parallel: int = 2,
        size: int = 128,
    ) -> None:
        self._run = run
        self._key = key
        self._parallel = parallel
        self._size = size
        self._items: list[tuple[Item, asyncio.Future[Result]]] = []
        self._keys: set[Hashable] = set()
        self._scheduled: asyncio.Handle | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        if self._key is not None:
            key = self._key(item)
            if key in self._keys:
                self._flush()
            self._keys.add(key)
        future: asyncio.Future[Result] = loop.create_future()
        self._items.append((item, future))
        if len(self._items) >= self._size:
            self._flush()
        elif self._scheduled is None and len(self._running) < self._parallel:
            self._scheduled = loop.call_soon(self._flush)
        # A cancelled caller (shutdown) does not cancel the group: the others still want it.
        return await asyncio.shield(future)

    def _flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        items, self._items, self._keys = self._items, [], set()
        if items:
            # A context of its own: the group serves many callers, not the one that flushed it (whose
            # trace span and log context would otherwise be current in it).
            task = asyncio.get_running_loop().create_task(
                self._run_group(items), context=contextvars.Context()
            )
            self._running.add(task)
            task.add_done_callback(self._group_done)

    def _group_done(self, task: "asyncio.Task[None]") -> None:
        self._running.discard(task)
        if self._items and self._scheduled is None:
            self._flush()  # what gathered while the groups ran

    async def _run_group(self, items: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._run([item for item, _ in items])
            if len(results) != len(items):
                raise RuntimeError(f"a batch of {len(items)} answered {len(results)} results")
        except Exception as error:  # every caller of the group sees the statement's own error
            for _, future in items:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(items, results, strict=True):
            if not future.done():
                future.set_result(result)
