"""`make demo`: sends one correctly signed sample of each vendor to a running ingress (`make run`),
then shows the rows and events the router stored for them.

Secrets come from the environment, falling back to deploy/demo.env, as `make run` does.
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

HERE = Path(__file__).resolve().parent


def secrets() -> dict[str, str]:
    found = {}
    for line in (HERE / "demo.env").read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            found[name] = os.environ.get(name, value)
    return found


async def main() -> int:
    base = os.environ.get("RESULTBUS_INGRESS_URL", "http://127.0.0.1:8080")
    ids: dict[str, str] = {}
    async with aiohttp.ClientSession() as http:
        for vendor, source, body, headers in samples.demo_requests(secrets(), random.randint(100000, 999999)):
            try:
                async with http.post(f"{base}/hooks/{source}", data=body, headers=headers) as response:
                    answer: Any = await response.json()
            except aiohttp.ClientError as error:
                print(f"{vendor:10} {base}: {error} (is the pipeline running? `make run`)")
                return 1
            print(f"{vendor:10} POST /hooks/{source} -> {response.status} {answer}")
            if response.status == 200:
                ids[answer["id"]] = vendor
    if not ids:
        return 1
    dsn = os.environ.get("RESULTBUS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/resultbus")
    conn = await asyncpg.connect(dsn)
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
    print("\nstored by the router:")
    for row in rows:
        print(
            f"  {ids[row['webhook']]:10} webhook {row['webhook']} {row['outcome']}: "
            f"event {row['type']} on exam {row['exam_key']} (now {row['exam_status']})"
        )
    return 0 if len(rows) >= len(ids) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
