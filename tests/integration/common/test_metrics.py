"""Metrics an operator scrapes: counted where the work happens, served on a port of their own."""

import aiohttp
import prometheus_client
from aiohttp.test_utils import TestClient, TestServer

from common.service import Service, running
from common.settings import ProcessSettings
from devkit import samples
from ingress.app import create_app
from ingress.publisher import Publisher
from ingress.settings import IngressSettings
from ingress.sources import parse_sources
from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.support.pipeline import running_router
from tests.support.ports import free_port

SOURCES = """
[[source]]
id = "metrics-synap"
vendor = "synap"
event = "attempt.completed"
[source.auth]
kind = "basic"
username = "u"
password_env = ["M_PASSWORD"]
"""


def sample(name: str, **labels: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_ingress_counts_answers_by_source_and_status(amqp_url: str, topology: Topology) -> None:
    publisher = Publisher(amqp_url, topology, confirm_timeout=2.0)
    await publisher.connect()
    settings = IngressSettings.from_env({"RESULTBUS_AMQP_PREFIX": topology.prefix})
    app = create_app(settings, parse_sources(SOURCES, {"M_PASSWORD": "pw"}), publisher)
    ok_before = sample("resultbus_ingress_requests_total", source="metrics-synap", status="200")
    denied_before = sample("resultbus_ingress_requests_total", source="metrics-synap", status="401")
    unknown_before = sample("resultbus_ingress_requests_total", source="-", status="404")
    body = samples.as_json(samples.synap_released())
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            headers = {"Content-Type": "application/json", "Authorization": samples.basic("u", "pw")}
            assert (await client.post("/hooks/metrics-synap", data=body, headers=headers)).status == 200
            headers["Authorization"] = samples.basic("u", "wrong")
            assert (await client.post("/hooks/metrics-synap", data=body, headers=headers)).status == 401
            assert (await client.post("/hooks/no-such-source-x1", data=body, headers=headers)).status == 404
    finally:
        await publisher.close()
    assert sample("resultbus_ingress_requests_total", source="metrics-synap", status="200") == ok_before + 1
    assert (
        sample("resultbus_ingress_requests_total", source="metrics-synap", status="401") == denied_before + 1
    )
    # An unknown path is counted without its name, so scanners cannot grow the label set.
    assert sample("resultbus_ingress_requests_total", source="-", status="404") == unknown_before + 1


async def test_router_counts_outcomes(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    stored = sample("resultbus_router_webhooks_total", outcome="stored")
    rejected = sample("resultbus_router_webhooks_total", outcome="rejected")
    published = sample("resultbus_router_events_published_total")
    async with running_router(amqp_url, database_url, topology, db_schema) as router:
        await router.publish_raw(samples.envelope(Vendor.TESTPRESS, samples.as_json(samples.testpress())))
        await router.publish_raw(samples.envelope(Vendor.TESTPRESS, b"{}"))
        await router.events(1)
        await router.raw_stored(2)
    assert sample("resultbus_router_webhooks_total", outcome="stored") == stored + 1
    assert sample("resultbus_router_webhooks_total", outcome="rejected") == rejected + 1
    assert sample("resultbus_router_events_published_total") == published + 1


async def test_metrics_are_served_on_their_own_port() -> None:
    port = free_port()

    async def start(service: Service, _: None) -> None:
        pass

    async with (
        running("metrics-test", None, start, ProcessSettings(metrics_port=port)),
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    assert "resultbus_ingress_requests_total" in text and "resultbus_router_webhooks_total" in text
    assert 'resultbus_ready{role="metrics-test"} 1.0' in text
