"""`make demo`: the whole loop on a running pipeline (`make run`): vendor -> event -> signed delivery
and a grade in the gradebook.

1. starts a tiny receiver on 127.0.0.1 (devkit/receiver.py) and subscribes it through the admin API,
   beside the fake OneRoster gradebook and Caliper endpoint `make run` starts (devkit/gradebook_demo.py);
2. sends one correctly signed sample of each vendor to the ingress;
3. shows the rows and events the router stored for them;
4. shows each delivery the receiver got, with its Standard Webhooks signature checked;
5. shows what the gradebook held for want of a student, maps those candidates through the admin API's
   crosswalk, and shows the grades in the gradebook and the Caliper events;
6. deletes the subscriptions (and the demo's mappings) again.

Secrets come from the environment, falling back to deploy/demo.env, as `make run` does; the admin
token is `make run`'s unless RESULTBUS_ADMIN_TOKEN says otherwise. The addresses are those `make run`
listens on, from the same variables (RESULTBUS_INGRESS_HOST/_PORT, RESULTBUS_ADMIN_HOST/_PORT, the
database's RESULTBUS_DATABASE_URL/_SCHEMA); the receiver listens on RESULTBUS_DEMO_RECEIVER_PORT
(a free port when unset).
"""

import asyncio
import os
import random
import sys
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from devkit import samples  # sample bodies shaped after the vendors' documents
from devkit.gradebook_demo import GradebookDemo
from devkit.itep_demo import place_demo_order
from devkit.receiver import Delivery, Receiver, delivery_line

HERE = Path(__file__).resolve().parent
LOCAL_ADMIN_TOKEN = "local-admin-token-change-me"  # deploy/run-local.sh's default


def secrets() -> dict[str, str]:
    found = {}
    for line in (HERE / "demo.env").read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            found[name] = os.environ.get(name, value)
    return found


def listening(host_variable: str, port_variable: str, default_port: int) -> str:
    """Where `make run` has a server listen, as a URL this machine can call."""
    host = os.environ.get(host_variable) or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"  # listening on every address: loopback is one of them
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{os.environ.get(port_variable) or default_port}"


def hint(what: str, variables: str, error: Exception) -> int:
    print(
        f"{what}: {error}: is `make run` running, with the same {variables}? (make demo calls the"
        " address make run listens on, from those variables)"
    )
    return 1


async def send_samples(http: aiohttp.ClientSession, base: str) -> dict[str, str] | None:
    ids: dict[str, str] = {}
    for vendor, source, body, headers in samples.demo_requests(secrets(), random.randint(100000, 999999)):
        async with http.post(f"{base}/hooks/{source}", data=body, headers=headers) as response:
            answer: Any = await response.json()
        print(f"{vendor:10} POST /hooks/{source} -> {response.status} {answer}")
        if response.status == 200:
            ids[answer["id"]] = vendor
    return ids or None


async def stored_rows(ids: dict[str, str]) -> list[asyncpg.Record]:
    dsn = os.environ.get("RESULTBUS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/resultbus")
    schema = os.environ.get("RESULTBUS_DATABASE_SCHEMA")
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema} if schema else None)
    rows: list[asyncpg.Record] = []
    try:
        for _ in range(50):
            rows = await conn.fetch(
                "SELECT w.id::text AS webhook, w.outcome, e.type, e.exam_key, x.status AS exam_status"
                " FROM raw_webhooks w LEFT JOIN events e ON e.webhook_id = w.id"
                " LEFT JOIN exams x ON x.vendor = e.vendor AND x.exam_key = e.exam_key"
                " WHERE w.id = ANY($1::uuid[])",
                list(ids),
            )
            if len(rows) >= len(ids):
                break
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    return rows


def results(received: list[Delivery]) -> list[Delivery]:
    # The dead-endpoint checker may call the new endpoint too (`verification`): shown, not counted.
    return [d for d in received if "vendor" in d.event]


async def main() -> int:
    ingress = listening("RESULTBUS_INGRESS_HOST", "RESULTBUS_INGRESS_PORT", 8080)
    admin = listening("RESULTBUS_ADMIN_HOST", "RESULTBUS_ADMIN_PORT", 8081)
    auth = {"Authorization": f"Bearer {os.environ.get('RESULTBUS_ADMIN_TOKEN', LOCAL_ADMIN_TOKEN)}"}
    received: list[Delivery] = []
    receiver = Receiver(None, received.append)
    port = await receiver.start(int(os.environ.get("RESULTBUS_DEMO_RECEIVER_PORT", "0")))
    url = f"http://127.0.0.1:{port}/demo"
    try:
        async with aiohttp.ClientSession() as http:
            try:
                async with http.post(
                    f"{admin}/v1/subscriptions", json={"url": url, "description": "make demo"}, headers=auth
                ) as response:
                    created: Any = await response.json()
            except aiohttp.ClientError as error:
                return hint(f"admin API {admin}", "RESULTBUS_ADMIN_HOST/RESULTBUS_ADMIN_PORT", error)
            if response.status != 201:
                print(f"admin API {admin}: POST /v1/subscriptions -> {response.status} {created}")
                return 1
            subscription = created["subscription"]["id"]
            receiver.secret = created["secret"]
            print(f"subscribed {url} through the admin API (subscription {subscription})")
            grades = GradebookDemo(http, admin, auth, secrets())
            graded = False
            print()
            try:
                if not await grades.subscribe():
                    return 1
                print()
                try:
                    ids = await send_samples(http, ingress)
                except aiohttp.ClientError as error:
                    return hint(f"ingress {ingress}", "RESULTBUS_INGRESS_HOST/RESULTBUS_INGRESS_PORT", error)
                if ids is None:
                    return 1
                rows = await stored_rows(ids)
                print("\nstored by the router:")
                for row in rows:
                    print(
                        f"  {ids[row['webhook']]:10} webhook {row['webhook']} {row['outcome']}: "
                        f"event {row['type']} on exam {row['exam_key']} (now {row['exam_status']})"
                    )
                events = sum(1 for row in rows if row["type"] is not None)
                for _ in range(100):
                    if len(results(received)) >= events:
                        break
                    await asyncio.sleep(0.1)
                print(f"\ndelivered to {url}, signed (Standard Webhooks):")
                for delivery in received:
                    print(f"  {delivery_line(delivery)}")
                graded = await grades.finish()
            finally:
                async with http.delete(f"{admin}/v1/subscriptions/{subscription}", headers=auth):
                    pass
                await grades.clean_up()
    finally:
        await receiver.stop()
    complete = len(rows) >= len(ids) and len(results(received)) >= events and graded
    print("\nan iTEP test ID ordered through the admin API, its result tied back to the order:")
    token = os.environ.get("RESULTBUS_ADMIN_TOKEN", LOCAL_ADMIN_TOKEN)
    ordered = await place_demo_order(admin, token, random.randint(100_000, 999_999))
    return 0 if complete and all(d.verified for d in received) and ordered == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
