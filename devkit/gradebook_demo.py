"""`make demo`'s gradebook part: the samples' results written into the fake OneRoster 1.2 gradebook and
sent to the fake Caliper 1.2 endpoint that `make run` starts (devkit/oneroster.py, devkit/caliper.py),
through gradebook subscriptions made with the admin API. A candidate the crosswalk cannot map is held;
the demo then maps it as a registrar would (`PUT /v1/crosswalk/...`) and the result goes by itself."""

import asyncio
import os
from typing import Any

import aiohttp

from schemas.oneroster import BASE_PATH, SCOPE_READONLY

CLIENT_SECRET_ENV = "RESULTBUS_DEMO_GRADEBOOK_SECRET"
CALIPER_TOKEN_ENV = "RESULTBUS_DEMO_CALIPER_TOKEN"
# Who the demo's candidates are in the institution's SIS (the registrar's list).
STUDENTS = {"synap": ("user-77", "S-DEMO-0077"), "testpress": ("918", "S-DEMO-0918")}


def gradebook() -> str:
    return f"http://127.0.0.1:{os.environ.get('RESULTBUS_FAKE_GRADEBOOK_PORT') or 8092}"


def caliper() -> str:
    return f"http://127.0.0.1:{os.environ.get('RESULTBUS_FAKE_CALIPER_PORT') or 8093}/caliper"


def destinations() -> list[dict[str, Any]]:
    scales = {"testpress": {"kind": "points", "max_score": 100}}  # Testpress sends no maximum
    return [
        {
            "kind": "oneroster",
            "base_url": gradebook() + BASE_PATH,
            "oauth": {
                "token_url": gradebook() + "/oauth/token",
                "client_id": "resultbus",
                "client_secret_env": CLIENT_SECRET_ENV,
            },
            "class_sourced_id": "class-demo-101",
            "school_sourced_id": "org-demo-campus",
            "category_sourced_id": "cat-placement",
            "scales": scales,
        },
        {
            "kind": "caliper",
            "endpoint": caliper(),
            "token_env": CALIPER_TOKEN_ENV,
            "sensor": "https://resultbus.example.edu/sensors/demo",
            "app": "https://resultbus.example.edu",
            "person": "https://sis.example.edu/users/{student}",
            "scales": scales,
        },
    ]


class GradebookDemo:
    def __init__(
        self, http: aiohttp.ClientSession, admin: str, auth: dict[str, str], secrets: dict[str, str]
    ):
        self._http, self._admin, self._auth, self._secrets = http, admin, auth, secrets
        self.subscriptions: list[str] = []
        # What the fake servers held before (they live as long as `make run`): the demo shows what is new.
        self._known_results: set[str] = set()
        self._known_events: set[str] = set()

    async def subscribe(self) -> bool:
        self._known_results = {r["sourcedId"] for r in await self._listing()}
        self._known_events = {e["id"] for e in await self._caliper_listing()}
        for destination in destinations():
            answer, status = await self._call("POST", "/v1/subscriptions", {"destination": destination})
            if status != 201:
                print(f"admin API: a {destination['kind']} subscription -> {status} {answer}")
                return False
            self.subscriptions.append(answer["subscription"]["id"])
            print(
                f"subscribed the fake {destination['kind']} ({answer['subscription']['url']}) as a destination"
            )
        return True

    async def finish(self) -> bool:
        """Maps what was held, then shows what the gradebook and the Caliper store got."""
        oneroster = self.subscriptions[0]
        held = await self._held(oneroster, len(STUDENTS))
        print(f"\nheld for the gradebook, its candidate not mapped to a student yet ({len(held)}):")
        for one in held:
            print(f"  {one['vendor']:10} {one['exam_key']}: {one['reason']}")
        for vendor, (candidate, student) in STUDENTS.items():
            body = {"student": student, "by": "registrar@example.edu", "note": "make demo"}
            _, status = await self._call("PUT", f"/v1/crosswalk/{vendor}/{candidate}", body)
            print(f"  PUT /v1/crosswalk/{vendor}/{candidate} {{student: {student}}} -> {status}")
        results = await self._results(expected=3)
        print(f"\nin the gradebook ({gradebook()}{BASE_PATH}/results):")
        for r in results:
            score = r.get("score", "-")
            print(
                f"  {r['student']['sourcedId']:14} {r['lineItem']['sourcedId'][:8]}… score {score} ({r['scoreStatus']})"
            )
        answer, _ = await self._call("GET", f"/v1/subscriptions/{oneroster}/deliveries?status=cancelled")
        for delivery in answer["deliveries"]:
            why = delivery["attempt_log"][-1]["error"] if delivery["attempt_log"] else ""
            print(
                f"  (not written: {delivery['vendor']} {delivery['event_type']} on {delivery['exam_key']}: {why})"
            )
        events = await self._caliper_events()
        print(f"\nat the Caliper endpoint ({caliper()}):")
        for e in events:
            score = e.get("generated", {}).get("scoreGiven", "-")
            print(f"  {e['type']} {e['action']} by {e['actor']['id']} score {score}")
        return len(results) >= 3 and len(events) >= 3

    async def clean_up(self) -> None:
        for subscription in self.subscriptions:
            await self._call("DELETE", f"/v1/subscriptions/{subscription}")
        for vendor, (candidate, _) in STUDENTS.items():
            await self._call("DELETE", f"/v1/crosswalk/{vendor}/{candidate}?by=make+demo")

    async def _held(self, subscription: str, count: int) -> list[dict[str, Any]]:
        held: list[dict[str, Any]] = []
        for _ in range(100):
            answer, _ = await self._call("GET", f"/v1/crosswalk/held?subscription_id={subscription}")
            held = answer.get("held", [])
            if len(held) >= count:
                break
            await asyncio.sleep(0.1)
        return held

    async def _results(self, expected: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for _ in range(100):
            found = [r for r in await self._listing() if r["sourcedId"] not in self._known_results]
            if len(found) >= expected:
                break
            await asyncio.sleep(0.1)
        return found

    async def _caliper_events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for _ in range(100):
            events = [e for e in await self._caliper_listing() if e["id"] not in self._known_events]
            if len(events) >= 3:
                break
            await asyncio.sleep(0.1)
        return events

    async def _listing(self) -> list[dict[str, Any]]:
        """The gradebook's results, read as an institution would: OneRoster's own API."""
        headers = {"Authorization": f"Bearer {await self._token()}"}
        async with self._http.get(
            f"{gradebook()}{BASE_PATH}/results?limit=1000", headers=headers
        ) as response:
            return list((await response.json()).get("results", []))

    async def _caliper_listing(self) -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self._secrets[CALIPER_TOKEN_ENV]}"}
        async with self._http.get(f"{caliper()}/events", headers=headers) as response:
            return list((await response.json())["events"])

    async def _token(self) -> str:
        auth = aiohttp.BasicAuth("resultbus", self._secrets[CLIENT_SECRET_ENV])
        form = {"grant_type": "client_credentials", "scope": SCOPE_READONLY}
        async with self._http.post(gradebook() + "/oauth/token", data=form, auth=auth) as response:
            return str((await response.json())["access_token"])

    async def _call(self, method: str, path: str, body: Any = None) -> tuple[Any, int]:
        async with self._http.request(method, self._admin + path, json=body, headers=self._auth) as response:
            answer = await response.json() if response.content_type == "application/json" else None
            return answer, response.status
