"""SSRF at connect time (issue 19, items 6 and 7): a subscription row whose host is loopback in a
spelling `urlsplit` does not read as an address (`①②⑦.0.0.1`, fullwidth digits, ideographic full
stops), written while private endpoints were allowed or by hand, must not be called once they are
not; nor a numeric host that resolvers read differently (`127.1`, `2130706433`, `0x7f.0.0.1`,
`010.0.0.1`), whatever the setting. Through a real poster, the real checker and the real delivery
worker, against a real loopback HTTP server that must receive nothing; the host logic is pure and
tested without I/O first."""

import msgspec
import pytest

from admin import store as admin_store
from admin import wire
from schemas.topology import Topology
from subscribers.endpoint import InvalidEndpoint, connect_host, ends_in_a_number, is_dotted_quad, target
from subscribers.poster import Poster, subscriber_session
from subscribers.signing import generate_secret
from tests.support.checker import FAST as CHECKER_FAST
from tests.support.checker import CheckWorld
from tests.support.delivery import FAST as DELIVERY_FAST
from tests.support.delivery import Subscriber, make_event, subscriber, world

# Hosts that are 127.0.0.1 once yarl (and so aiohttp) has mapped them through IDNA.
LOOPBACK_SPELLINGS = ["①②⑦.0.0.1", "\uff11\uff12\uff17.\uff10.\uff10.\uff11", "127\u30020\u30020\u30021"]
# Numeric hosts resolvers disagree on (inet_aton: octal, hex, fewer parts; others: decimal or names).
AMBIGUOUS = ["127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "127.0.0.01", "010.0.0.1", "127.0.1"]


# -- the host as it will be connected to, without I/O ------------------------------------------------


@pytest.mark.parametrize("spelling", LOOPBACK_SPELLINGS)
def test_a_unicode_spelling_of_an_address_is_the_address_it_connects_to(spelling: str) -> None:
    url, host = target(f"http://{spelling}:8080/hook")
    assert host == "127.0.0.1" and url.raw_host == "127.0.0.1"


@pytest.mark.parametrize("host", [*AMBIGUOUS, "0", "1.2.3", "256.0.0.1", "1.2.3.4.5", "a.b.0x1f", "x.123"])
def test_numeric_hosts_in_any_form_but_four_decimals_are_refused(host: str) -> None:
    assert ends_in_a_number(host)
    assert not is_dotted_quad(host)
    with pytest.raises(InvalidEndpoint, match="numeric address"):
        connect_host(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "8.8.8.8", "255.255.255.255", "10.0.0.1"])
def test_four_decimal_numbers_are_an_address(host: str) -> None:
    assert is_dotted_quad(host) and connect_host(host) == host


@pytest.mark.parametrize("host", ["example.com", "a1.example", "0x.example", "1a", "example.com.", "x1e1"])
def test_names_that_merely_hold_digits_are_names(host: str) -> None:
    assert not ends_in_a_number(host)
    assert connect_host(host) == host.rstrip(".")


# -- a real poster, a real loopback server that must receive nothing -------------------------------


def _poster(*, allow_private: bool) -> Poster:
    session = subscriber_session(allow_private=allow_private, limit=4, keep_alive=False)
    return Poster(session, timeout=2.0, max_response_bytes=1024, allow_private=allow_private)


def _on(sub: Subscriber, host: str, path: str) -> str:
    port = sub.server.port
    assert port is not None
    return f"http://{host}:{port}{path}"


async def test_the_poster_refuses_loopback_in_any_spelling_and_says_forbidden_address() -> None:
    async with subscriber() as sub:
        poster = _poster(allow_private=False)
        try:
            for spelling in LOOPBACK_SPELLINGS:
                outcome = await poster.post(_on(sub, spelling, "/hook"), b"{}", {})
                assert outcome.status is None and outcome.error is not None, spelling
                assert outcome.error == "refused: 127.0.0.1 is a forbidden address", spelling
            # A name resolving to loopback: refused by the resolver at connect time, and said so
            # (the refusal arrives wrapped in aiohttp's connection error, not as a DNS failure).
            outcome = await poster.post(_on(sub, "localhost", "/hook"), b"{}", {})
            assert outcome.error is not None
            assert outcome.error.startswith("refused: localhost resolves to a forbidden address")
            for host in AMBIGUOUS:
                outcome = await poster.post(_on(sub, host, "/hook"), b"{}", {})
                assert outcome.error is not None and "numeric address" in outcome.error, host
            for broken in ["a..b", ".a", "a" * 64 + ".example", "\x80"]:
                outcome = await poster.post(_on(sub, broken, "/hook"), b"{}", {})
                assert outcome.error is not None and outcome.error.startswith("refused:"), broken
        finally:
            await poster._session.close()
        assert sub.received == {}


async def test_with_private_endpoints_allowed_the_mapped_spelling_is_called_and_ambiguous_ones_never() -> (
    None
):
    async with subscriber() as sub:
        poster = _poster(allow_private=True)
        try:
            outcome = await poster.post(_on(sub, LOOPBACK_SPELLINGS[0], "/mapped"), b"{}", {})
            assert outcome.ok, outcome
            for host in AMBIGUOUS:
                outcome = await poster.post(_on(sub, host, "/ambiguous"), b"{}", {})
                assert outcome.error is not None and "numeric address" in outcome.error, host
        finally:
            await poster._session.close()
        assert list(sub.received) == ["/mapped"]  # the server works: what it did not get was refused


async def test_the_checker_never_calls_a_loopback_row_and_records_forbidden_address(cw: CheckWorld) -> None:
    async with subscriber() as sub:
        urls = [_on(sub, spelling, f"/check{i}") for i, spelling in enumerate(LOOPBACK_SPELLINGS)]
        urls.append(_on(sub, "010.0.0.1", "/octal"))
        async with cw.pool.acquire() as conn:
            for url in urls:
                # As such rows were written before: the endpoint spelled as given, not mapped.
                await admin_store.create_subscription(
                    conn, wire.SubscriptionCreate(url=url), url, generate_secret()
                )
        strict = msgspec.structs.replace(CHECKER_FAST, allow_private=False)
        async with cw.checker(strict) as checker:
            summary = await cw.next_round(checker)
        assert (summary.checked, summary.failed, summary.errors) == (len(urls), len(urls), 0)
        rows = {
            r["url"]: r["last_error"] for r in await cw.pool.fetch("SELECT url, last_error FROM endpoints")
        }
        for url in urls[:-1]:
            assert rows[url] == "refused: 127.0.0.1 is a forbidden address", url
        assert "numeric address" in rows[urls[-1]]
        assert sub.received == {}


async def test_the_delivery_worker_never_calls_a_loopback_row(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    strict = msgspec.structs.replace(DELIVERY_FAST, allow_private=False)
    async with world(amqp_url, database_url, topology, db_schema, strict) as w, subscriber() as sub:
        subscription_id, _ = await w.subscribe(_on(sub, LOOPBACK_SPELLINGS[0], "/hook"))
        await w.publish(make_event())
        row = await w.delivery(subscription_id, "failed")
        errors = [a["error"] for a in await w.attempts(row["id"])]
        assert errors and all(e == "refused: 127.0.0.1 is a forbidden address" for e in errors), errors
        assert sub.received == {}
