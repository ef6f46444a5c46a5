"""A small OneRoster 1.2 Gradebook provider for tests and `make demo`: what a SIS answers to a
results writer, written as a provider would (no resultbus code), so that what resultbus sends is
checked by something that did not produce it.

    .venv/bin/python -m devkit.oneroster --port 9100 --client-id resultbus --client-secret s3cret

- `POST /oauth/token`: OAuth 2.0 client credentials, client authenticated with HTTP Basic (as the
  1EdTech Security Framework has it), form body `grant_type=client_credentials[&scope=...]`; answers
  a bearer token that expires after `token_lifetime` seconds (RFC 6749 errors otherwise).
- under `/ims/oneroster/gradebook/v1p2`: `GET|PUT /lineItems/{sourcedId}`, `GET /lineItems`,
  `GET|PUT /results/{sourcedId}`, `GET /results` (`limit`, `offset`, `filter=field='value'`,
  `X-Total-Count`). A PUT answers 201 when it created the record, 200 when it replaced it, with the
  record. Reads need the `gradebook.readonly` or `gradebook.createput` scope, writes `createput`.
- errors carry `imsx_StatusInfo` (`imsx_codeMajor` failure, `imsx_severity` error,
  `imsx_description`, `imsx_CodeMinor`): 400 `invaliddata` (malformed body, missing or mistyped
  field, unknown field), 401 `unauthorisedrequest` (no, unknown or expired token), 403 `forbidden`
  (scope), 404 `unknownobject`, 422 `invaliddata` (well formed but not acceptable: sourcedId not the
  path's, an unknown line item, a score outside the line item's range), 429/5xx on demand.
- failing on demand: `fail_next(count, status)` (or `POST /_devkit/fail` with
  `{"count": 3, "status": 503, "retry_after": 1, "path": "/results"}`); `expire_tokens()` (or
  `POST /_devkit/expire-tokens`) makes every token issued so far expire now.
"""

import argparse
import asyncio
import base64
import binascii
import contextlib
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from devkit.serving import until_stopped

BASE = "/ims/oneroster/gradebook/v1p2"
SCOPE_READONLY = "https://purl.imsglobal.org/spec/or/v1p2/scope/gradebook.readonly"
SCOPE_CREATEPUT = "https://purl.imsglobal.org/spec/or/v1p2/scope/gradebook.createput"
SCORE_STATUSES = ("exempt", "fully graded", "not submitted", "partially graded", "submitted")
RECORD_STATUSES = ("active", "tobedeleted")
TRUE_FALSE = ("true", "false")
MAX_BODY = 1 << 20


class Refused(Exception):
    """An answer other than success, in the binding's error shape."""

    def __init__(
        self, status: int, minor: str, description: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.minor = minor
        self.description = description
        self.headers = headers or {}


def status_info(minor: str, description: str) -> dict[str, Any]:
    return {
        "imsx_codeMajor": "failure",
        "imsx_severity": "error",
        "imsx_description": description,
        "imsx_CodeMinor": {
            "imsx_codeMinorField": [
                {"imsx_codeMinorFieldName": "TargetEndSystem", "imsx_codeMinorFieldValue": minor}
            ]
        },
    }


# -- validation of the records, field by field, as the 1.2 information model has them ---------------


def _datetime(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise Refused(400, "invaliddata", f"{where}: expected a date and time string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(400, "invaliddata", f"{where}: {value!r} is not an ISO 8601 date and time") from None
    if parsed.tzinfo is None:
        raise Refused(400, "invaliddata", f"{where}: {value!r} has no time zone (UTC: Z)")


def _date(value: Any, where: str) -> None:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise Refused(400, "invaliddata", f"{where}: expected a date YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise Refused(400, "invaliddata", f"{where}: {value!r} is not a calendar date") from None


def _text(value: Any, where: str, *, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value.strip()):
        raise Refused(400, "invaliddata", f"{where}: expected a non-empty string")


def _number(value: Any, where: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Refused(400, "invaliddata", f"{where}: expected a number")


def _choice(value: Any, where: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise Refused(400, "invaliddata", f"{where}: {value!r} is not one of {', '.join(allowed)}")


def _ref(value: Any, where: str, kind: str, *, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, dict):
        raise Refused(400, "invaliddata", f"{where}: expected a GUIDRef object")
    unknown = set(value) - {"href", "sourcedId", "type"}
    if unknown:
        raise Refused(400, "invaliddata", f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    _text(value.get("href"), f"{where}.href")
    if not re.match(r"^https?://", value["href"]):
        raise Refused(400, "invaliddata", f"{where}.href: expected an http(s) URL")
    _text(value.get("sourcedId"), f"{where}.sourcedId")
    if value.get("type") != kind:
        raise Refused(400, "invaliddata", f"{where}.type: expected {kind!r}, got {value.get('type')!r}")


def _metadata(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, dict):
        raise Refused(400, "invaliddata", f"{where}: expected an object")


def _known(record: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(record) - allowed
    if unknown:
        raise Refused(400, "invaliddata", f"{where}: unknown field(s) {', '.join(sorted(unknown))}")


LINE_ITEM_FIELDS = {
    "sourcedId", "status", "dateLastModified", "metadata", "title", "description", "assignDate", "dueDate",
    "class", "school", "category", "academicSession", "gradingPeriod", "scoreScale", "resultValueMin",
    "resultValueMax", "learningObjectiveSet",
}  # fmt: skip
RESULT_FIELDS = {
    "sourcedId", "status", "dateLastModified", "metadata", "lineItem", "student", "class", "scoreScale",
    "scoreStatus", "score", "textScore", "scoreDate", "comment", "learningObjectiveSet", "inProgress",
    "incomplete", "late", "missing",
}  # fmt: skip


def check_line_item(item: Any) -> None:
    if not isinstance(item, dict):
        raise Refused(400, "invaliddata", "lineItem: expected an object")
    _known(item, LINE_ITEM_FIELDS, "lineItem")
    _text(item.get("sourcedId"), "lineItem.sourcedId")
    _choice(item.get("status"), "lineItem.status", RECORD_STATUSES)
    _datetime(item.get("dateLastModified"), "lineItem.dateLastModified")
    _metadata(item.get("metadata"), "lineItem.metadata")
    _text(item.get("title"), "lineItem.title")
    _text(item.get("description"), "lineItem.description", required=False)
    _datetime(item.get("assignDate"), "lineItem.assignDate")
    _datetime(item.get("dueDate"), "lineItem.dueDate")
    _ref(item.get("class"), "lineItem.class", "class")
    _ref(item.get("school"), "lineItem.school", "org")
    _ref(item.get("category"), "lineItem.category", "category")
    _ref(item.get("academicSession"), "lineItem.academicSession", "academicSession", required=False)
    _ref(item.get("gradingPeriod"), "lineItem.gradingPeriod", "academicSession", required=False)
    _ref(item.get("scoreScale"), "lineItem.scoreScale", "scoreScale", required=False)
    _number(item.get("resultValueMin"), "lineItem.resultValueMin")
    _number(item.get("resultValueMax"), "lineItem.resultValueMax")
    low, high = item.get("resultValueMin"), item.get("resultValueMax")
    if low is not None and high is not None and low > high:
        raise Refused(422, "invaliddata", "lineItem: resultValueMin is greater than resultValueMax")


def check_result(result: Any) -> None:
    if not isinstance(result, dict):
        raise Refused(400, "invaliddata", "result: expected an object")
    _known(result, RESULT_FIELDS, "result")
    _text(result.get("sourcedId"), "result.sourcedId")
    _choice(result.get("status"), "result.status", RECORD_STATUSES)
    _datetime(result.get("dateLastModified"), "result.dateLastModified")
    _metadata(result.get("metadata"), "result.metadata")
    _ref(result.get("lineItem"), "result.lineItem", "lineItem")
    _ref(result.get("student"), "result.student", "user")
    _ref(result.get("class"), "result.class", "class", required=False)
    _ref(result.get("scoreScale"), "result.scoreScale", "scoreScale", required=False)
    _choice(result.get("scoreStatus"), "result.scoreStatus", SCORE_STATUSES)
    _number(result.get("score"), "result.score")
    _text(result.get("textScore"), "result.textScore", required=False)
    _date(result.get("scoreDate"), "result.scoreDate")
    _text(result.get("comment"), "result.comment", required=False)
    for flag in ("inProgress", "incomplete", "late", "missing"):
        if flag in result:
            _choice(result[flag], f"result.{flag}", TRUE_FALSE)


# -- the provider -------------------------------------------------------------------------------------


@dataclass
class Failure:
    status: int
    retry_after: float | None = None
    path: str | None = None  # only calls whose path contains this
    description: str = "failing on demand"


@dataclass
class Call:
    method: str
    path: str
    status: int


@dataclass
class Token:
    client_id: str
    scopes: frozenset[str]
    expires_at: float


@dataclass
class OneRosterProvider:
    """The provider, in process (tests) or on its own (`python -m devkit.oneroster`)."""

    clients: dict[str, str] = field(default_factory=lambda: {"resultbus": "resultbus-secret"})
    token_lifetime: float = 3600.0
    scopes: frozenset[str] = frozenset({SCOPE_READONLY, SCOPE_CREATEPUT})
    clock: Callable[[], float] = time.monotonic
    line_items: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    tokens_issued: int = 0
    _tokens: dict[str, Token] = field(default_factory=dict)
    _failures: list[Failure] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0

    # -- control ----------------------------------------------------------------------------------

    def fail_next(
        self,
        count: int,
        status: int,
        *,
        retry_after: float | None = None,
        path: str | None = None,
        description: str = "failing on demand",
    ) -> None:
        self._failures.extend(Failure(status, retry_after, path, description) for _ in range(count))

    def expire_tokens(self) -> None:
        now = self.clock()
        for token in self._tokens.values():
            token.expires_at = min(token.expires_at, now)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{BASE}"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/oauth/token"

    def calls_to(self, method: str, fragment: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and fragment in c.path]

    # -- HTTP -------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY)
        app.router.add_post("/oauth/token", self._token)
        app.router.add_get(BASE + "/lineItems", self._list_line_items)
        app.router.add_get(BASE + "/lineItems/{id}", self._get_line_item)
        app.router.add_put(BASE + "/lineItems/{id}", self._put_line_item)
        app.router.add_get(BASE + "/results", self._list_results)
        app.router.add_get(BASE + "/results/{id}", self._get_result)
        app.router.add_put(BASE + "/results/{id}", self._put_result)
        app.router.add_post("/_devkit/fail", self._control_fail)
        app.router.add_post("/_devkit/expire-tokens", self._control_expire)
        return app

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        response: web.StreamResponse
        try:
            if request.path.startswith(BASE) and self._failures:
                chosen = next((f for f in self._failures if f.path is None or f.path in request.path), None)
                if chosen is not None:
                    self._failures.remove(chosen)
                    headers = (
                        {"Retry-After": f"{chosen.retry_after:g}"} if chosen.retry_after is not None else {}
                    )
                    minor = "server_busy" if chosen.status in (429, 503) else "internal_server_error"
                    if chosen.status < 500 and chosen.status != 429:
                        minor = "invaliddata"
                    raise Refused(chosen.status, minor, chosen.description, headers)
            response = await handler(request)
        except Refused as refused:
            response = web.json_response(
                status_info(refused.minor, refused.description),
                status=refused.status,
                headers=refused.headers,
            )
        except web.HTTPException as error:
            if error.status < 400:
                raise
            response = web.json_response(status_info("invaliddata", error.reason), status=error.status)
        self.calls.append(Call(request.method, request.path, response.status))
        return response

    async def _token(self, request: web.Request) -> web.Response:
        def oauth_error(status: int, error: str, description: str) -> web.Response:
            headers = {"WWW-Authenticate": 'Basic realm="oneroster"'} if status == 401 else {}
            return web.json_response(
                {"error": error, "error_description": description}, status=status, headers=headers
            )

        client = _basic(request.headers.get("Authorization", ""))
        if (
            client is None
            or self.clients.get(client[0]) is None
            or not secrets.compare_digest(self.clients[client[0]], client[1])
        ):
            return oauth_error(401, "invalid_client", "client authentication failed (HTTP Basic)")
        if request.content_type != "application/x-www-form-urlencoded":
            return oauth_error(
                400, "invalid_request", "the token request is a form (application/x-www-form-urlencoded)"
            )
        form = dict(parse_qsl((await request.read()).decode("utf-8", "replace")))
        if form.get("grant_type") != "client_credentials":
            return oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
        asked = frozenset(form.get("scope", "").split()) or self.scopes
        if not asked <= self.scopes:
            return oauth_error(400, "invalid_scope", f"not granted: {' '.join(sorted(asked - self.scopes))}")
        token = secrets.token_urlsafe(24)
        self._tokens[token] = Token(client[0], asked, self.clock() + self.token_lifetime)
        self.tokens_issued += 1
        return web.json_response(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.token_lifetime,
                "scope": " ".join(sorted(asked)),
            },
            headers={"Cache-Control": "no-store"},
        )

    def _authorize(self, request: web.Request, *, write: bool) -> None:
        header = request.headers.get("Authorization", "")
        token = self._tokens.get(header[7:]) if header[:7].lower() == "bearer " else None
        if token is None or self.clock() >= token.expires_at:
            raise Refused(
                401,
                "unauthorisedrequest",
                "missing, unknown or expired access token",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        needed = {SCOPE_CREATEPUT} if write else {SCOPE_READONLY, SCOPE_CREATEPUT}
        if not token.scopes & needed:
            raise Refused(403, "forbidden", f"the token lacks the scope {' or '.join(sorted(needed))}")

    @staticmethod
    async def _body(request: web.Request, key: str) -> Any:
        if request.content_type != "application/json":
            raise Refused(400, "invaliddata", "the body is JSON (application/json)")
        try:
            parsed = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            raise Refused(400, "invaliddata", "the body is not JSON") from None
        if not isinstance(parsed, dict) or set(parsed) != {key}:
            raise Refused(400, "invaliddata", f'the body is {{"{key}": {{...}}}}')
        return parsed[key]

    async def _get_line_item(self, request: web.Request) -> web.Response:
        self._authorize(request, write=False)
        found = self.line_items.get(unquote(request.match_info["id"]))
        if found is None:
            raise Refused(404, "unknownobject", "no line item with that sourcedId")
        return web.json_response({"lineItem": found})

    async def _put_line_item(self, request: web.Request) -> web.Response:
        self._authorize(request, write=True)
        sourced_id = unquote(request.match_info["id"])
        item = await self._body(request, "lineItem")
        check_line_item(item)
        if item["sourcedId"] != sourced_id:
            raise Refused(422, "invaliddata", "lineItem.sourcedId is not the sourcedId of the path")
        created = sourced_id not in self.line_items
        self.line_items[sourced_id] = item
        return web.json_response({"lineItem": item}, status=201 if created else 200)

    async def _get_result(self, request: web.Request) -> web.Response:
        self._authorize(request, write=False)
        found = self.results.get(unquote(request.match_info["id"]))
        if found is None:
            raise Refused(404, "unknownobject", "no result with that sourcedId")
        return web.json_response({"result": found})

    async def _put_result(self, request: web.Request) -> web.Response:
        self._authorize(request, write=True)
        sourced_id = unquote(request.match_info["id"])
        result = await self._body(request, "result")
        check_result(result)
        if result["sourcedId"] != sourced_id:
            raise Refused(422, "invaliddata", "result.sourcedId is not the sourcedId of the path")
        item = self.line_items.get(result["lineItem"]["sourcedId"])
        if item is None:
            raise Refused(
                422, "invaliddata", f"result.lineItem: no line item {result['lineItem']['sourcedId']!r}"
            )
        score = result.get("score")
        if score is not None:
            low, high = item.get("resultValueMin"), item.get("resultValueMax")
            if (low is not None and score < low) or (high is not None and score > high):
                raise Refused(
                    422,
                    "invaliddata",
                    f"result.score {score:g} is outside the line item's range {low}..{high}",
                )
        if result["scoreStatus"] == "fully graded" and score is None and result.get("textScore") is None:
            raise Refused(422, "invaliddata", "result: fully graded without a score or a textScore")
        created = sourced_id not in self.results
        self.results[sourced_id] = result
        return web.json_response({"result": result}, status=201 if created else 200)

    def _page(self, request: web.Request, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        try:
            limit = int(request.query.get("limit", "100"))
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            raise Refused(400, "invalid_selection_field", "limit and offset are whole numbers") from None
        if limit < 1 or offset < 0:
            raise Refused(400, "invalid_selection_field", "limit is at least 1, offset at least 0")
        wanted = request.query.get("filter")
        if wanted:
            found = re.fullmatch(r"\s*([A-Za-z.]+)\s*=\s*'([^']*)'\s*", wanted)
            if found is None:
                raise Refused(400, "invalid_filter_field", "filter: field='value' (one predicate)")
            path, value = found[1].split("."), found[2]
            records = [r for r in records if _dig(r, path) == value]
        return records[offset : offset + limit], len(records)

    async def _list_results(self, request: web.Request) -> web.Response:
        self._authorize(request, write=False)
        page, total = self._page(request, list(self.results.values()))
        return web.json_response({"results": page}, headers={"X-Total-Count": str(total)})

    async def _list_line_items(self, request: web.Request) -> web.Response:
        self._authorize(request, write=False)
        page, total = self._page(request, list(self.line_items.values()))
        return web.json_response({"lineItems": page}, headers={"X-Total-Count": str(total)})

    async def _control_fail(self, request: web.Request) -> web.Response:
        asked = await request.json()
        self.fail_next(
            int(asked.get("count", 1)),
            int(asked.get("status", 503)),
            retry_after=asked.get("retry_after"),
            path=asked.get("path"),
        )
        return web.json_response({"failing": len(self._failures)})

    async def _control_expire(self, request: web.Request) -> web.Response:
        self.expire_tokens()
        return web.json_response({"expired": len(self._tokens)})

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> int:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _basic(header: str) -> tuple[str, str] | None:
    if header[:6].lower() != "basic ":
        return None
    try:
        user, sep, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (unquote(user), unquote(password)) if sep else None


def _dig(record: dict[str, Any], path: list[str]) -> Any:
    value: Any = record
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


async def _serve(args: argparse.Namespace) -> None:
    provider = OneRosterProvider(
        clients={args.client_id: args.client_secret}, token_lifetime=args.token_lifetime
    )

    async def start() -> str:
        await provider.start(args.port, args.host)
        return f"OneRoster 1.2 gradebook on {provider.base_url} (token endpoint {provider.token_url})"

    await until_stopped("devkit.oneroster", args.port, start, provider.close, "RESULTBUS_FAKE_GRADEBOOK_PORT")


def main() -> None:
    parser = argparse.ArgumentParser(
        description="A OneRoster 1.2 gradebook provider for trying resultbus out."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--client-id", default="resultbus")
    parser.add_argument("--client-secret", default="resultbus-secret")
    parser.add_argument("--token-lifetime", type=float, default=3600.0, help="seconds a token lives")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
