"""The gradebook sender against the devkit OneRoster provider and Caliper endpoint, real HTTP servers
on loopback: idempotent re-PUTs, the line item created once, tokens that expire (by time and under a
burst), a 401 refreshing once, a 5xx storm answered as retryable outcomes, a 4xx carrying the
provider's own message, the SSRF policy, and secrets kept out of what is returned."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from devkit import samples
from devkit.caliper import CaliperEndpoint
from devkit.oneroster import OneRosterProvider
from gradebook.config import OneRosterDestination
from gradebook.crosswalk import Lookup, Row
from gradebook.plan import CaliperWrite, OneRosterWrite, plan
from gradebook.send import Sender, retryable
from schemas.event import ResultEvent
from schemas.oneroster import SCOPE_READONLY, ResultBody, encode
from subscribers.poster import subscriber_session
from tests.support.gradebook_world import (
    CALIPER_TOKEN_ENV,
    SECRET_ENV,
    caliper_destination,
    oneroster_destination,
    sample_itep,
    sample_synap,
    sample_testpress,
)

CLIENT_SECRET = "s3cret-for-tests-only"
CALIPER_TOKEN = "caliper-token-for-tests"
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


class Clock:
    """Time both sides read, moved by the test: a token's lifetime passes without waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def provider(clock: Clock) -> AsyncIterator[OneRosterProvider]:
    running = OneRosterProvider(clients={"resultbus": CLIENT_SECRET}, token_lifetime=600.0, clock=clock)
    await running.start()
    yield running
    await running.close()


@pytest.fixture
async def sender(clock: Clock) -> AsyncIterator[Sender]:
    async with subscriber_session(allow_private=True, limit=20) as session:
        yield Sender(
            session,
            timeout=5.0,
            max_response_bytes=4096,
            allow_private=True,
            env={SECRET_ENV: CLIENT_SECRET, CALIPER_TOKEN_ENV: CALIPER_TOKEN},
            clock=clock,
        )


def destination(provider: OneRosterProvider) -> OneRosterDestination:
    return oneroster_destination(provider.base_url, provider.token_url)


def write(event: ResultEvent, where: OneRosterDestination, student: str = "S-1001") -> OneRosterWrite:
    planned = plan(event, where, Lookup(row=Row(student=student, override=True)), now=NOW)
    assert isinstance(planned, OneRosterWrite), planned
    return planned


def stored(provider: OneRosterProvider, sourced_id: str) -> dict[str, Any]:
    return provider.results[sourced_id]


async def test_a_result_is_written_and_its_line_item_created_once(
    provider: OneRosterProvider, sender: Sender
) -> None:
    where = destination(provider)
    first = await sender.send(where, write(sample_synap("att-1"), where, "S-1"))
    second = await sender.send(where, write(sample_synap("att-2"), where, "S-2"))
    assert (first.status, first.error, second.status) == (201, None, 201)
    assert len(provider.line_items) == 1 and len(provider.results) == 2
    assert len(provider.calls_to("PUT", "/lineItems/")) == 1
    assert len(provider.calls_to("GET", "/lineItems/")) == 1  # remembered after the first
    item = next(iter(provider.line_items.values()))
    assert (item["title"], item["resultValueMax"]) == ("Synap Maths 2024", 1.0)
    assert provider.tokens_issued == 1


async def test_redelivery_re_puts_the_same_result(provider: OneRosterProvider, sender: Sender) -> None:
    where = destination(provider)
    once = write(sample_testpress(), where)
    first = await sender.send(where, once)
    again = await sender.send(where, write(sample_testpress(), where))  # the event delivered again
    assert (first.status, again.status) == (201, 200)  # created, then replaced by the same record
    assert list(provider.results) == [once.result.sourcedId]
    assert stored(provider, once.result.sourcedId)["score"] == 87.5


async def test_an_invalidation_updates_the_earlier_result(
    provider: OneRosterProvider, sender: Sender
) -> None:
    where = destination(provider)
    graded = write(sample_itep(), where)
    assert (await sender.send(where, graded)).ok
    assert stored(provider, graded.result.sourcedId)["score"] == 4.5
    withdrawn = write(sample_itep("Invalidated"), where)
    outcome = await sender.send(where, withdrawn)
    assert outcome.status == 200
    result = stored(provider, graded.result.sourcedId)
    assert len(provider.results) == 1
    assert result["scoreStatus"] == "not submitted" and "score" not in result


async def test_a_line_item_the_institution_edited_is_not_rewritten(
    provider: OneRosterProvider, sender: Sender
) -> None:
    where = destination(provider)
    planned = write(sample_synap(), where)
    provider.line_items[planned.line_item.sourcedId] = {
        **msgspec.to_builtins(planned.line_item),
        "title": "Maths final (edited by the registrar)",
    }
    assert (await sender.send(where, planned)).ok
    assert provider.calls_to("PUT", "/lineItems/") == []
    assert (
        provider.line_items[planned.line_item.sourcedId]["title"] == "Maths final (edited by the registrar)"
    )


async def test_a_token_is_refreshed_before_it_expires(
    provider: OneRosterProvider, sender: Sender, clock: Clock
) -> None:
    where = destination(provider)
    assert (await sender.send(where, write(sample_synap("a"), where))).ok
    clock.now += 595  # the token lives 600 s: 5 s left, inside the refresh margin
    assert (await sender.send(where, write(sample_synap("b"), where))).ok
    assert provider.tokens_issued == 2
    assert [c for c in provider.calls if c.status == 401] == []  # never used an expiring token


async def test_token_expiry_mid_burst_costs_one_new_token(
    provider: OneRosterProvider, sender: Sender
) -> None:
    where = destination(provider)
    writes = [write(sample_synap(f"burst-{n}"), where, f"S-{n}") for n in range(40)]
    assert (await sender.send(where, writes[0])).ok  # the line item exists, the token is cached
    first = asyncio.gather(*(sender.send(where, w) for w in writes[1:20]))
    provider.expire_tokens()  # the provider revokes every token while the burst is under way
    second = asyncio.gather(*(sender.send(where, w) for w in writes[20:]))
    outcomes = [*await first, *await second]
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    assert len(provider.results) == 40
    assert provider.tokens_issued == 2  # however many calls saw the 401, one refresh
    refused = [c for c in provider.calls if c.status == 401]
    assert refused and len(refused) <= 39


async def test_a_401_refreshes_once_and_retries_once(provider: OneRosterProvider, sender: Sender) -> None:
    where = destination(provider)
    assert (await sender.send(where, write(sample_synap("x"), where))).ok
    provider.expire_tokens()
    outcome = await sender.send(where, write(sample_synap("y"), where))
    assert outcome.status == 201
    assert [c.status for c in provider.calls_to("PUT", "/results/")] == [201, 401, 201]
    # Credentials revoked: the new token is refused at the token endpoint, the call is not repeated.
    # It is the destination's credentials, not this result: tried again later (once they are fixed).
    provider.clients["resultbus"] = "rotated-by-the-sis"
    provider.expire_tokens()
    outcome = await sender.send(where, write(sample_synap("z"), where))
    assert outcome.status is None and retryable(outcome)
    assert outcome.error is not None and "invalid_client" in outcome.error
    assert [c.status for c in provider.calls_to("PUT", "/results/")][-1] == 401
    assert len(provider.calls_to("PUT", "/results/")) == 4  # the refused call, made once


async def test_a_5xx_storm_is_returned_as_retryable_outcomes(
    provider: OneRosterProvider, sender: Sender
) -> None:
    where = destination(provider)
    planned = write(sample_testpress(), where)
    provider.fail_next(3, 503, retry_after=7)
    provider.fail_next(2, 500)
    outcomes = [await sender.send(where, planned) for _ in range(6)]
    assert [o.status for o in outcomes] == [503, 503, 503, 500, 500, 201]
    assert [o.retry_after for o in outcomes[:3]] == [7.0, 7.0, 7.0]
    assert all(retryable(o) for o in outcomes[:5]) and not retryable(outcomes[5])
    assert outcomes[0].error is not None and outcomes[0].error.startswith("GET /lineItems/")
    assert "failing on demand (server_busy)" in outcomes[0].error
    assert len(provider.results) == 1


async def test_a_4xx_answer_carries_the_providers_message(
    provider: OneRosterProvider, sender: Sender
) -> None:
    where = destination(provider)
    planned = write(sample_testpress(), where)
    provider.fail_next(
        1, 422, path="/results/", description="student S-1001 is not enrolled in class-esl-101"
    )
    outcome = await sender.send(where, planned)
    assert outcome.status == 422 and not retryable(outcome)
    assert outcome.error == (
        f"PUT /results/{planned.result.sourcedId}: HTTP 422:"
        " student S-1001 is not enrolled in class-esl-101 (invaliddata)"
    )


async def test_a_lost_line_item_is_created_again(provider: OneRosterProvider, sender: Sender) -> None:
    where = destination(provider)
    planned = write(sample_testpress(), where)
    assert (await sender.send(where, planned)).ok
    provider.line_items.clear()  # the SIS dropped the column
    # Refused (422, no such line item): made again and the result written, in the same attempt.
    assert (await sender.send(where, planned)).ok
    assert [c.status for c in provider.calls_to("PUT", "/results/")][-2:] == [422, 200]
    assert len(provider.calls_to("PUT", "/lineItems/")) == 2


async def test_the_provider_refuses_a_score_outside_the_line_items_range(
    provider: OneRosterProvider, sender: Sender
) -> None:
    where = destination(provider)
    planned = write(sample_testpress(), where)
    provider.line_items[planned.line_item.sourcedId] = {
        **msgspec.to_builtins(planned.line_item),
        "resultValueMax": 50,
    }
    outcome = await sender.send(where, planned)
    assert outcome.status == 422
    assert outcome.error is not None and "outside the line item's range" in outcome.error


async def test_private_addresses_are_refused_unless_allowed(provider: OneRosterProvider) -> None:
    where = destination(provider)
    async with subscriber_session(allow_private=False, limit=2) as session:
        guarded = Sender(
            session,
            timeout=5.0,
            max_response_bytes=4096,
            allow_private=False,
            env={SECRET_ENV: CLIENT_SECRET},
        )
        outcome = await guarded.send(where, write(sample_synap(), where))
    assert outcome.status is None and retryable(outcome)
    assert outcome.error is not None and "forbidden address" in outcome.error
    assert provider.calls == [] and provider.tokens_issued == 0


async def test_secrets_stay_out_of_outcomes(provider: OneRosterProvider, clock: Clock) -> None:
    where = destination(provider)
    async with subscriber_session(allow_private=True, limit=2) as session:
        unset = Sender(session, timeout=5.0, max_response_bytes=4096, allow_private=True, env={}, clock=clock)
        outcome = await unset.send(where, write(sample_synap(), where))
        assert outcome.error == f"token endpoint: environment variable {SECRET_ENV} is not set"
        wrong = Sender(
            session,
            timeout=5.0,
            max_response_bytes=4096,
            allow_private=True,
            env={SECRET_ENV: "wrong-secret-xyz"},
            clock=clock,
        )
        outcome = await wrong.send(where, write(sample_synap(), where))
    assert outcome.status is None and outcome.error is not None and "HTTP 401" in outcome.error
    assert "wrong-secret-xyz" not in outcome.error and "invalid_client" in outcome.error


async def test_caliper_envelopes_are_accepted_by_the_endpoint(sender: Sender) -> None:
    endpoint = CaliperEndpoint(token=CALIPER_TOKEN)
    await endpoint.start()
    try:
        where = caliper_destination(endpoint.url)
        lookup = Lookup(row=Row(student="S-1001", override=True))
        graded = plan(sample_testpress(), where, lookup, now=NOW)
        finished = plan(sample_itep("Finished"), where, lookup, now=NOW)
        assert isinstance(graded, CaliperWrite) and isinstance(finished, CaliperWrite)
        outcomes = [await sender.send(where, graded), await sender.send(where, finished)]
        assert [o.status for o in outcomes] == [200, 200], [o.error for o in outcomes]
        assert [(e["type"], e["action"]) for e in endpoint.events] == [
            ("GradeEvent", "Graded"),
            ("AssessmentEvent", "Submitted"),
        ]
        endpoint.fail_next(1, 503)
        assert retryable(await sender.send(where, graded))
        endpoint.token = "rotated"
        refused = await sender.send(where, graded)
        assert (
            refused.status == 401
            and refused.error == 'POST: HTTP 401: {"error": "missing or wrong bearer token"}'
        )
    finally:
        await endpoint.close()


async def test_the_devkit_provider_answers_as_the_binding_does(
    provider: OneRosterProvider, sender: Sender
) -> None:
    where = destination(provider)
    for n in range(3):
        assert (await sender.send(where, write(sample_synap(f"list-{n}"), where, f"S-{n % 2}"))).ok
    token = await sender.tokens.token(where.oauth)
    async with subscriber_session(allow_private=True, limit=2) as http:
        auth = {"Authorization": f"Bearer {token}"}
        async with http.get(
            provider.base_url + "/results",
            params={"filter": "student.sourcedId='S-0'", "limit": "1"},
            headers=auth,
        ) as response:
            assert (response.status, response.headers["X-Total-Count"]) == (200, "2")
            assert len((await response.json())["results"]) == 1
        async with http.get(
            provider.base_url + "/results", params={"filter": "score>1"}, headers=auth
        ) as response:
            body = await response.json()
            assert response.status == 400
            assert (
                body["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"]
                == "invalid_filter_field"
            )
        async with http.get(provider.base_url + "/results/nope", headers=auth) as response:
            assert response.status == 404 and (await response.json())["imsx_codeMajor"] == "failure"
        async with http.put(
            provider.base_url + "/results/x", data=b"{", headers={**auth, "Content-Type": "application/json"}
        ) as response:
            assert response.status == 400
        async with http.get(provider.base_url + "/results") as response:
            assert response.status == 401 and "Bearer" in response.headers["WWW-Authenticate"]
        # A token granted the read-only scope may read, not write.
        basic = {"Authorization": samples.basic("resultbus", CLIENT_SECRET)}
        async with http.post(
            provider.token_url,
            data={"grant_type": "client_credentials", "scope": SCOPE_READONLY},
            headers=basic,
        ) as response:
            reader = (await response.json())["access_token"]
        planned = write(sample_synap("ro"), where)
        async with http.put(
            provider.base_url + f"/results/{planned.result.sourcedId}",
            data=encode(ResultBody(planned.result)),
            headers={"Authorization": f"Bearer {reader}", "Content-Type": "application/json"},
        ) as response:
            assert response.status == 403
        async with http.post(provider.token_url, data={"grant_type": "password"}, headers=basic) as response:
            assert (response.status, (await response.json())["error"]) == (400, "unsupported_grant_type")
