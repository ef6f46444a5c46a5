"""The iTEP part of `make demo`: places one order on the admin API and follows it until its result
is in (with `make run`, a fake iTEP assigns the test ID and then sends the results webhook)."""

import asyncio
import uuid
from typing import Any

import aiohttp

FINAL = {"completed", "invalidated", "reset", "rejected", "failed", "unconfirmed"}


def demo_order(n: int) -> dict[str, Any]:
    return {
        "reference": f"demo-{n}-{uuid.uuid4().hex[:6]}",
        "product_code": "STX-Academic-Plus",
        "email": "mary.example@example.com",
        "assigned_to": {"student-name": "Mary Example", "customer-candidate-id": n},
        "registration": {"First_Name": "Mary", "Last_Name": "Example", "Birthday": "7/8/1995"},
    }


async def place_demo_order(admin_url: str, token: str, n: int, *, wait: float = 20.0) -> int:
    """Prints the order's course; 0 when it reached a result, 1 otherwise."""
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        try:
            async with http.post(f"{admin_url}/v1/itep/orders", json=demo_order(n)) as response:
                placed = await response.json()
        except aiohttp.ClientError as error:
            print(f"itep order  {admin_url}: {error} (is the admin API running? `make run`)")
            return 1
        if response.status != 202:
            print(f"itep order  POST /v1/itep/orders -> {response.status} {placed}")
            return 1
        print(f"itep order  POST /v1/itep/orders -> 202 order {placed['id']} ({placed['status']})")
        seen: list[str] = []
        order: dict[str, Any] = placed
        async with asyncio.timeout(wait):
            while True:
                async with http.get(f"{admin_url}/v1/itep/orders/{placed['id']}") as response:
                    order = await response.json()
                for change in order["history"][len(seen) :]:
                    seen.append(change["change"])
                    print(
                        f"            {change['change']:18} {change.get('detail') or change.get('event_type') or ''}"
                    )
                if order["status"] in FINAL:
                    break
                await asyncio.sleep(0.3)
        print(f"            order {order['id']}: test ID {order['test_id']}, now {order['status']}")
        return 0 if order["status"] == "completed" else 1
