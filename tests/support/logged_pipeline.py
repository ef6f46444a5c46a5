"""The pipeline pieces over fixtures with JSON logs on stderr, for tests/system/test_log_privacy.py to grep:
`python -m tests.logged_pipeline AMQP_URL DATABASE_URL SCHEMA PREFIX`. A process of its own, because
structlog loggers keep the output they were first used with."""

import asyncio
import sys
from collections.abc import Sequence

import aio_pika
from aiohttp.test_utils import TestClient, TestServer

from admin import store as admin_store
from admin import wire
from admin.app import create_app
from common.broker import declare_results
from common.logs import configure_logging
from common.service import running
from common.settings import ProcessSettings
from devkit import samples
from schemas.delivery import Attempt
from schemas.topology import Topology
from schemas.vendor import Vendor
from subscribers.endpoint import normalize_endpoint
from subscribers.signing import generate_secret
from tests.support.delivery import FAST, subscriber
from tests.support.pipeline import running_router
from workers.delivery.run import start_delivery
from workers.retention.erasure import Erasures
from workers.retention.settings import RetentionSettings

EMAIL = "grace.hopper@example.com"
NAME = "Grace Hopper-Example"


class NoTasks:
    async def now_all(self, tasks: Sequence[Attempt]) -> None:
        raise AssertionError("no replay here")


def fixtures() -> list[samples.RawEnvelope]:
    synap = samples.synap_released(attempt_id="att-log")
    synap["user"] = {**synap["user"], "email": EMAIL, "name": NAME}
    rejected = samples.synap_released(attempt_id="att-bad", timestamp="not a time")
    rejected["user"] = {**rejected["user"], "email": "not-an-email " + EMAIL, "name": NAME}
    testpress = samples.testpress(attempt_id=8801)
    testpress["email"], testpress["username"] = EMAIL, NAME
    itep_body, itep_type = samples.itep_urlencoded(samples.itep(OID=EMAIL))
    return [
        samples.envelope(Vendor.SYNAP, samples.as_json(synap), event="exam.resultsReleased"),
        samples.envelope(Vendor.SYNAP, samples.as_json(rejected), event="exam.resultsReleased"),
        samples.envelope(Vendor.TESTPRESS, samples.as_json(testpress)),
        samples.envelope(Vendor.ITEP, itep_body, content_type=itep_type),
        samples.envelope(Vendor.ITEP, b"data=%7B%22OID%22%3A%22" + EMAIL.encode(), content_type=itep_type),
    ]


async def main(amqp_url: str, database_url: str, schema: str, prefix: str) -> None:
    configure_logging("DEBUG", json=True, stream=sys.stderr)
    topology = Topology(prefix)
    async with (
        subscriber() as sub,
        running_router(amqp_url, database_url, topology, schema) as router,
        running("delivery", (router.settings, FAST), start_delivery, ProcessSettings(shutdown_timeout=2.0)),
    ):
        async with router.pool.acquire() as conn:
            await admin_store.create_subscription(
                conn,
                wire.SubscriptionCreate(url=sub.url("/in")),
                normalize_endpoint(sub.url("/in")),
                generate_secret(),
            )
        envelopes = fixtures()
        for envelope in envelopes:
            await router.publish_raw(envelope)
        await router.raw_stored(len(envelopes))
        await sub.wait("/in", 3, timeout=20)
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            results = await declare_results(await connection.channel(publisher_confirms=True), topology)
            app = create_app(router.pool, NoTasks(), token=None, allow_private=True)
            async with TestClient(TestServer(app)) as client:
                answer = await client.post("/v1/erasures", json={"email": EMAIL, "requested_by": "dpo"})
                assert answer.status == 202
                assert await Erasures(RetentionSettings(), router.pool, results).work_once()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
