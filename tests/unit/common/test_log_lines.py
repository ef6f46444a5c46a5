"""Log lines are one JSON object each, with the context bound for the request or message."""

import asyncio
import io
import json

import structlog

from common import logs
from common.logs import configure_logging


def test_json_lines_carry_bound_context_and_survive_odd_values() -> None:
    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)
    try:
        log = structlog.get_logger("test")
        with logs.bound(webhook_id="w-1", source="itep-demo"):
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("failed", thing=object())
        log.debug("not shown at INFO")
    finally:
        structlog.reset_defaults()
    [line] = [json.loads(text) for text in out.getvalue().splitlines()]
    assert (line["event"], line["level"], line["webhook_id"], line["source"]) == (
        "failed",
        "error",
        "w-1",
        "itep-demo",
    )
    assert "ValueError: boom" in line["exception"] and line["thing"].startswith("<object")


class _Writes(io.StringIO):
    """Records each write, to check that lines are written whole and in bounded writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_lines_of_one_loop_turn_are_written_together_whole_and_in_pipe_sized_writes() -> None:
    out = _Writes()
    configure_logging("INFO", json=True, stream=out)
    log = structlog.get_logger("test")

    async def burst() -> None:
        for i in range(100):
            log.info("line", i=i, padding="é" * 60)  # not ASCII: bytes, not characters, are counted
        assert out.writes == []  # gathered until the loop's next turn
        await asyncio.sleep(0)

    try:
        asyncio.run(burst())
        log.info("outside a loop")  # written at once
    finally:
        structlog.reset_defaults()
    assert 1 < len(out.writes) < 100
    assert all(w.endswith("\n") and len(w.encode()) <= 4096 for w in out.writes)
    lines = [json.loads(text) for text in out.getvalue().splitlines()]
    assert [line.get("i") for line in lines] == [*range(100), None]


def test_lines_left_by_a_closed_loop_are_written_by_the_next() -> None:
    out = _Writes()
    configure_logging("INFO", json=True, stream=out)
    log = structlog.get_logger("test")

    async def one(text: str) -> None:
        log.info(text)  # the loop ends before its next turn: the flush is never run there

    try:
        asyncio.run(one("first"))
        asyncio.run(one("second"))
        asyncio.run(asyncio.sleep(0))
    finally:
        structlog.reset_defaults()
    assert [json.loads(t)["event"] for t in out.getvalue().splitlines()][:2] == ["first", "second"]


def test_bound_context_is_per_task() -> None:
    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)
    log = structlog.get_logger("test")

    async def handle(webhook_id: str) -> None:
        logs.clear()
        logs.bind(webhook_id=webhook_id)
        await asyncio.sleep(0)
        log.info("handled")

    async def main() -> None:
        await asyncio.gather(handle("a"), handle("b"))
        await asyncio.sleep(0)

    try:
        asyncio.run(main())
    finally:
        structlog.reset_defaults()
    assert sorted(json.loads(t)["webhook_id"] for t in out.getvalue().splitlines()) == ["a", "b"]
