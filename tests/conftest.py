"""Shared fixtures and the layers. Every test that touches a service gets a world of its own: a unique
broker prefix (exchanges and queues) and a unique PostgreSQL schema, both removed afterwards.

A test's layer is its directory, and so is its marker (`pytest -m unit`, `make test-unit`): unit/ is
pure (no broker, no database, no process), integration/<area>/ runs on the real broker and database in
this process, system/ through real processes, docs/ and deploy/ hold the documents and the deployment
artefacts to what they say. The worlds and helpers the tests share are in tests/support/."""

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from common import tracing
from schemas.topology import Topology
from tests.support.services import AMQP_URL, DATABASE_URL, delete_topology


@pytest.fixture
def amqp_url() -> str:
    return AMQP_URL


@pytest.fixture
def database_url() -> str:
    return DATABASE_URL


@pytest.fixture
async def topology() -> AsyncIterator[Topology]:
    topo = Topology(prefix=f"rbtest-{uuid.uuid4().hex[:12]}")
    yield topo
    await delete_topology(topo)


@pytest.fixture
async def db_schema() -> AsyncIterator[str]:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        yield schema
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    """Tracing on for the test, its spans kept by the SDK's in-memory exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.shutdown()


LAYERS = ("unit", "integration", "system", "docs", "deploy")
SERVICES = {"amqp_url", "database_url", "topology", "db_schema"}
HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        layer = item.path.relative_to(HERE).parts[0]
        if layer not in LAYERS:
            raise pytest.UsageError(f"{item.nodeid}: a test lives in one of tests/{{{','.join(LAYERS)}}}/")
        if layer == "unit" and SERVICES & set(getattr(item, "fixturenames", ())):
            raise pytest.UsageError(f"{item.nodeid}: a unit test uses no service; it belongs in integration/")
        item.add_marker(layer)
