"""Subscription URLs whose host no resolver can take, or takes in more than one way (issue 19, items
2 and 7): the admin API on a real listener over the real database answers POST and PATCH with a 422
naming the field, never a 500, whether private endpoints are allowed or not. The endpoint a URL is
stored under is its host as it will be connected to."""

import pytest

from schemas.topology import Topology
from subscribers.endpoint import InvalidEndpoint, normalize_endpoint
from tests.support.admin import admin_api

# The IDNA codec cannot encode these (an empty label, a leading dot, a 64-character label, a C1 control).
UNENCODABLE = ["http://a..b/hook", "http://.a/hook", f"http://{'a' * 64}.example/hook", "http://\x80/hook"]
# Resolvers read these as different addresses, or as names.
AMBIGUOUS = ["http://010.0.0.1/hook", "http://127.1/hook", "http://2130706433/", "http://0x7f.0.0.1/"]
BROKEN = ["http://exa mple.com/", "http://ex%41mple.com/", "http://[::zz]/"]


@pytest.mark.parametrize("url", UNENCODABLE + AMBIGUOUS + BROKEN)
def test_hosts_that_cannot_be_connected_to_as_written_are_refused(url: str) -> None:
    with pytest.raises(InvalidEndpoint):
        normalize_endpoint(url)


@pytest.mark.parametrize(
    ("given", "endpoint"),
    [
        ("http://Bücher.Example/x", "http://xn--bcher-kva.example/x"),  # the name resolvers are asked
        ("http://①②⑦.0.0.1:8080/h", "http://127.0.0.1:8080/h"),  # one endpoint with 127.0.0.1
        ("http://example.com./", "http://example.com/"),
        ("http://[::FFFF:127.0.0.1]/", "http://[::ffff:7f00:1]/"),
    ],
)
def test_the_endpoint_is_the_host_as_connected_to(given: str, endpoint: str) -> None:
    assert normalize_endpoint(given) == endpoint


@pytest.mark.parametrize("allow_private", [True, False])
async def test_post_and_patch_answer_422_naming_the_url(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str, allow_private: bool
) -> None:
    async with admin_api(amqp_url, database_url, topology, db_schema, allow_private=allow_private) as admin:
        status, created = await admin.call("POST", "/v1/subscriptions", {"url": "http://93.184.216.34/hook"})
        assert status == 201, created
        path = f"/v1/subscriptions/{created['subscription']['id']}"
        for url in UNENCODABLE + AMBIGUOUS + BROKEN:
            for method, route in (("POST", "/v1/subscriptions"), ("PATCH", path)):
                status, answer = await admin.call(method, route, {"url": url})
                assert status == 422, f"{method} {url!r}: {status} {answer}"
                assert answer["error"].startswith("url: "), answer
        status, answer = await admin.call("POST", "/v1/subscriptions", {"url": "http://010.0.0.1/hook"})
        assert "numeric address" in answer["error"]
        # Unchanged by the refused PATCHes.
        status, found = await admin.call("GET", path)
        assert (status, found["url"]) == (200, "http://93.184.216.34/hook")
