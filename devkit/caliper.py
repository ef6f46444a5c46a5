"""A Caliper 1.2 endpoint for tests and `make demo`: checks each envelope and its events as an
analytics store would (no resultbus code), answers 200, and keeps what it accepted.

    .venv/bin/python -m devkit.caliper --port 9200 --token caliper-demo-token

- `POST /caliper` with `Authorization: Bearer <token>` (401 otherwise) and `application/json` (415
  otherwise): the envelope must have `sensor` (an IRI), `sendTime` (an ISO 8601 date and time),
  `dataVersion` = `http://purl.imsglobal.org/ctx/caliper/v1p2` and a non-empty `data` list.
- each event: `@context` the 1.2 context, `id` a `urn:uuid:` UUID, `type` an event type, `action`
  one its profile allows, `actor`/`object` entities (an `id` IRI and a `type`), `eventTime`; for a
  GradeEvent an Attempt object (with `assignee` and `assignable`) and a generated Score (its
  `attempt` the object's id, `scoreGiven` within `maxScore`); for an AssessmentEvent a Person
  actor, an Assessment object and, when present, a generated Attempt.
- a refused envelope gets 400 `{"error": "...", "at": "data[0].actor.id"}`, and nothing of it is kept.
- `fail_next(count, status)` answers the next calls with that status.
"""

import argparse
import asyncio
import contextlib
import json
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from devkit.serving import until_stopped

CONTEXT = "http://purl.imsglobal.org/ctx/caliper/v1p2"
ACTIONS = {
    "GradeEvent": {"Graded"},
    "AssessmentEvent": {"Started", "Paused", "Resumed", "Restarted", "Reset", "Submitted"},
    "AssessmentItemEvent": {"Started", "Skipped", "Completed"},
    "Event": None,  # any action
}
_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


class Invalid(Exception):
    def __init__(self, at: str, error: str) -> None:
        super().__init__(error)
        self.at = at
        self.error = error


def _iri(value: Any, at: str) -> str:
    if not isinstance(value, str) or not _IRI.match(value):
        raise Invalid(at, "expected an IRI")
    return value


def _time(value: Any, at: str) -> None:
    if not isinstance(value, str):
        raise Invalid(at, "expected an ISO 8601 date and time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(at, f"{value!r} is not an ISO 8601 date and time") from None
    if parsed.tzinfo is None:
        raise Invalid(at, "a date and time needs its zone (UTC: Z)")


def _entity(value: Any, at: str, *types: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(at, "expected an entity object")
    _iri(value.get("id"), f"{at}.id")
    if value.get("type") not in types:
        raise Invalid(f"{at}.type", f"expected {' or '.join(types)}, got {value.get('type')!r}")
    return value


def _number(value: Any, at: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(at, "expected a number")
    return float(value)


def check_event(event: Any, at: str) -> None:
    if not isinstance(event, dict):
        raise Invalid(at, "expected an event object")
    context = event.get("@context")
    if context != CONTEXT and not (isinstance(context, list) and CONTEXT in context):
        raise Invalid(f"{at}.@context", f"expected {CONTEXT}")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id.startswith("urn:uuid:"):
        raise Invalid(f"{at}.id", "expected urn:uuid:<uuid>")
    try:
        uuid.UUID(event_id.removeprefix("urn:uuid:"))
    except ValueError:
        raise Invalid(f"{at}.id", "not a UUID") from None
    kind = event.get("type")
    if kind not in ACTIONS:
        raise Invalid(f"{at}.type", f"unknown event type {kind!r}")
    allowed = ACTIONS[kind]
    if not isinstance(event.get("action"), str) or (allowed is not None and event["action"] not in allowed):
        raise Invalid(f"{at}.action", f"{kind} does not allow action {event.get('action')!r}")
    _time(event.get("eventTime"), f"{at}.eventTime")
    if "edApp" in event:
        _entity(event["edApp"], f"{at}.edApp", "SoftwareApplication")
    if kind == "GradeEvent":
        _entity(event.get("actor"), f"{at}.actor", "Person", "SoftwareApplication", "Agent")
        tried = _entity(event.get("object"), f"{at}.object", "Attempt")
        _entity(tried.get("assignee"), f"{at}.object.assignee", "Person")
        _entity(tried.get("assignable"), f"{at}.object.assignable", "Assessment", "AssignableDigitalResource")
        score = _entity(event.get("generated"), f"{at}.generated", "Score")
        if score.get("attempt") != tried["id"] and not (
            isinstance(score.get("attempt"), dict) and score["attempt"].get("id") == tried["id"]
        ):
            raise Invalid(f"{at}.generated.attempt", "expected the graded Attempt")
        given = _number(score.get("scoreGiven"), f"{at}.generated.scoreGiven")
        most = _number(score.get("maxScore"), f"{at}.generated.maxScore")
        if given is not None and most is not None and given > most:
            raise Invalid(f"{at}.generated.scoreGiven", "greater than maxScore")
        if given is None and not (isinstance(score.get("extensions"), dict) and score["extensions"]):
            raise Invalid(f"{at}.generated", "a Score with neither scoreGiven nor extensions says nothing")
    elif kind == "AssessmentEvent":
        _entity(event.get("actor"), f"{at}.actor", "Person")
        _entity(event.get("object"), f"{at}.object", "Assessment")
        if "generated" in event:
            _entity(event["generated"], f"{at}.generated", "Attempt")
    else:
        _entity(
            event.get("actor"),
            f"{at}.actor",
            "Person",
            "SoftwareApplication",
            "Agent",
            "Organization",
            "Group",
        )
        if not isinstance(event.get("object"), dict):
            raise Invalid(f"{at}.object", "expected an entity object")


def check_envelope(envelope: Any) -> list[dict[str, Any]]:
    if not isinstance(envelope, dict):
        raise Invalid("$", "expected an envelope object")
    _iri(envelope.get("sensor"), "sensor")
    _time(envelope.get("sendTime"), "sendTime")
    if envelope.get("dataVersion") != CONTEXT:
        raise Invalid("dataVersion", f"expected {CONTEXT}")
    data = envelope.get("data")
    if not isinstance(data, list) or not data:
        raise Invalid("data", "expected a non-empty list")
    for n, event in enumerate(data):
        check_event(event, f"data[{n}]")
    return data


@dataclass
class CaliperEndpoint:
    token: str = "caliper-token"
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    calls: int = 0
    _failures: list[int] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/caliper"

    def fail_next(self, count: int, status: int) -> None:
        self._failures.extend([status] * count)

    async def _receive(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self._failures:
            status = self._failures.pop(0)
            return web.json_response({"error": "failing on demand"}, status=status)
        given = request.headers.get("Authorization", "")
        if given[:7].lower() != "bearer " or not secrets.compare_digest(given[7:], self.token):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        if request.content_type != "application/json":
            return web.json_response({"error": "an envelope is application/json"}, status=415)
        try:
            envelope = json.loads(await request.read())
            data = check_envelope(envelope)
        except (ValueError, UnicodeDecodeError):
            return web.json_response({"error": "not JSON"}, status=400)
        except Invalid as invalid:
            self.refused.append(f"{invalid.at}: {invalid.error}")
            return web.json_response({"error": invalid.error, "at": invalid.at}, status=400)
        self.envelopes.append(envelope)
        self.events.extend(data)
        return web.Response(status=200)

    async def _list(self, request: web.Request) -> web.Response:
        """The events kept, for `make demo` to show (the same bearer token)."""
        given = request.headers.get("Authorization", "")
        if given[:7].lower() != "bearer " or not secrets.compare_digest(given[7:], self.token):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        return web.json_response({"events": self.events})

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> int:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/caliper", self._receive)
        app.router.add_get("/caliper/events", self._list)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def _serve(args: argparse.Namespace) -> None:
    endpoint = CaliperEndpoint(token=args.token)

    async def start() -> str:
        await endpoint.start(args.port, args.host)
        return f"Caliper 1.2 endpoint on {endpoint.url} (what it kept: GET {endpoint.url}/events)"

    await until_stopped("devkit.caliper", args.port, start, endpoint.close, "RESULTBUS_FAKE_CALIPER_PORT")


def main() -> None:
    parser = argparse.ArgumentParser(description="A Caliper 1.2 endpoint for trying resultbus out.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--token", default="caliper-token")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
