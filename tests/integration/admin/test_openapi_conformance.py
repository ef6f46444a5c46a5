"""The admin API checked against its own OpenAPI document with schemathesis: every operation, with
generated valid inputs, must answer without a server error, with a documented status, content type
and body shape. Bounded (a few examples per operation) so that `make test` stays quick."""

import asyncio
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.openapi import from_dict
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from schemas.topology import Topology
from tests.support.admin import AUTH, admin_api

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 15


def _fuzz(spec: dict[str, Any], base_url: str) -> list[str]:
    """Runs in a thread (schemathesis' client is synchronous) while the app serves on the test's loop."""
    schema = from_dict(spec)
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Case) -> None:
            response = case.call(base_url=base_url, headers=AUTH)
            case.validate_response(response, checks=CHECKS)

        run()
        checked.append(operation.label)
    return checked


async def test_admin_api_conforms_to_its_openapi_document(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with admin_api(amqp_url, database_url, topology, db_schema) as api:
        async with aiohttp.ClientSession() as http, http.get(api.base + "/openapi.json") as response:
            spec = await response.json()
        # Something to find: a subscription, so that reads of existing things are exercised too.
        await api.call("POST", "/v1/subscriptions", {"url": "https://example.com/hook"})
        checked = await asyncio.to_thread(_fuzz, spec, api.base.rstrip("/"))
    assert len(checked) == sum(len(methods) for methods in spec["paths"].values())
