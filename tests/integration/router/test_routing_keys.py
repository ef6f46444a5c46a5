"""Result routing keys stay within the alphabet a binding can name: an iTEP `Status` iTEP does not
document becomes one word `event.<status>` (its text as sent kept in `vendor_event`), whatever the
text; a type stored before that, replayed, is made safe where the key is built."""

import re

import pytest

from devkit import samples
from schemas.topology import Topology, result_routing_key
from schemas.vendor import Vendor
from tests.support.pipeline import running_router
from vendors import itep

SAFE_KEY = re.compile(r"[a-z]+(\.[a-z0-9_]+)+")
ODD_STATUSES = [
    "Proctor Hold",
    "Complete.Review",  # one name: not the two words `complete` and `review`
    "Hold..Again",
    "On hold #2 (see *notes*)",
    "Überprüfung läuft",
    "Needs a second look " * 20,  # a routing key is at most 255 bytes
]


def _event(status: str) -> tuple[str, str]:
    body, content_type = samples.itep_urlencoded(samples.itep(status))
    [normalized] = itep.normalize(samples.envelope(Vendor.ITEP, body, content_type=content_type))
    return normalized.event.type, normalized.event.vendor_event


@pytest.mark.parametrize("status", ODD_STATUSES)
def test_an_undocumented_itep_status_is_one_safe_word_and_kept_as_sent(status: str) -> None:
    event_type, vendor_event = _event(status)
    assert re.fullmatch(r"event\.[a-z0-9_]+", event_type), event_type
    assert len(event_type) <= 128
    assert vendor_event == status.strip()
    assert SAFE_KEY.fullmatch(result_routing_key(Vendor.ITEP, event_type))


def test_the_status_names_its_word_and_long_ones_stay_apart() -> None:
    assert _event("Proctor Hold")[0] == "event.proctor_hold"
    assert _event("Complete.Review")[0] == "event.complete_review"
    assert _event("Hold..Again")[0] == "event.hold_again"
    long_a, long_b = "A very long status " * 20, "A very long status " * 19 + "B"
    assert _event(long_a)[0] != _event(long_b)[0]


def test_a_stored_unsafe_type_gets_a_safe_key_and_safe_ones_are_left_alone() -> None:
    for stored in ("event.a..b", "event.Odd Status", "event.*", "event." + "x" * 400, "event.#"):
        key = result_routing_key(Vendor.ITEP, stored)
        assert SAFE_KEY.fullmatch(key) and len(key.encode()) <= 255, key
    assert result_routing_key(Vendor.ITEP, "completed") == "itep.completed"
    assert result_routing_key(Vendor.SYNAP, "event.user.registered") == "synap.event.user.registered"


async def test_the_router_publishes_odd_statuses_under_safe_keys(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with running_router(amqp_url, database_url, topology, db_schema) as router:
        for n, status in enumerate(ODD_STATUSES):
            body, content_type = samples.itep_urlencoded(samples.itep(status, test_id=f"ODD{n}TEST"))
            await router.publish_raw(samples.envelope(Vendor.ITEP, body, content_type=content_type))
        events = await router.events(len(ODD_STATUSES))
        keys = {m.routing_key for m in router.received}
        assert all(SAFE_KEY.fullmatch(k or "") for k in keys), keys
        assert {e.vendor_event for e in events} == {s.strip() for s in ODD_STATUSES}
        assert {f"itep.{e.type}" for e in events} == keys
        assert await router.pool.fetchval("SELECT count(*) FROM raw_webhooks WHERE outcome = 'accepted'") == 6
