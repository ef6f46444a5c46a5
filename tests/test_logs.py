"""Log lines are one JSON object each, with the context bound for the request or message."""

import io
import json

import structlog

from common.logs import configure_logging


def test_json_lines_carry_bound_context_and_survive_odd_values() -> None:
    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)
    try:
        log = structlog.get_logger("test")
        with structlog.contextvars.bound_contextvars(webhook_id="w-1", source="itep-demo"):
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
