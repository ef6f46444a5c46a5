"""Rejected webhooks found by what their bodies say (test id, external id, exam key, email), in the
console and the admin API, through the real router, broker and database: "Find an exam" lists them,
the webhook page names its exam and links it, the exam page shows them, the rejected list filters
by them, and "Replay all that match" counts and asks first. The look-up is an index search (the
index's expression is the query's), and what the SQL function reads matches what the normalizers
make of the same bodies."""

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg

from common.rejected import KEYS, NEWEST_FIRST, RejectedFilter, where
from devkit import samples
from schemas.envelope import RawEnvelope
from schemas.vendor import Vendor
from tests.support.console_world import BEARER, ConsoleWorld, get, sign_in
from workers.router.normalize import normalize


def _rejected_bodies() -> dict[str, RawEnvelope]:
    """Webhooks the router rejects, each naming its exam in its own vendor's way."""
    multipart, multipart_type = samples.itep_multipart(
        samples.itep("Complete", test_id="REJ1TEST", OID="cand-9001", TestDate="13/45/2024")
    )
    form, form_type = samples.itep_urlencoded(
        samples.itep("Complete", test_id="REJ2TEST", Overall_Level="9.5")
    )
    synap = samples.synap_released(attempt_id="att-555")
    synap["user"]["email"] = "Rej.Candidate@example.com"
    del synap["meta"]["eventName"]
    testpress = samples.testpress(state="paused", attempt_id=777)
    testpress["institute_attempt_id"] = "inst-777"
    return {
        "itep1": samples.envelope(Vendor.ITEP, multipart, content_type=multipart_type, source="itep-main"),
        "itep2": samples.envelope(Vendor.ITEP, form, content_type=form_type, source="itep-other"),
        "synap": samples.envelope(Vendor.SYNAP, samples.as_json(synap)),
        "testpress": samples.envelope(Vendor.TESTPRESS, samples.as_json(testpress)),
        "garbage": samples.envelope(Vendor.INSPERA, b'{"broken": '),
    }


async def seed(world: ConsoleWorld) -> dict[str, str]:
    bad = _rejected_bodies()
    good_body, good_type = samples.itep_urlencoded(
        samples.itep("Complete", test_id="OK1TEST", OID="cand-9001")
    )
    good = samples.envelope(Vendor.ITEP, good_body, content_type=good_type)
    for envelope in (*bad.values(), good):
        await world.router.publish_raw(envelope)
    await world.router.raw_stored(len(bad) + 1)
    await world.router.events(1)
    outcomes = dict(await world.router.pool.fetch("SELECT id::text, outcome FROM raw_webhooks"))
    assert [outcomes[e.id] for e in bad.values()] == ["rejected"] * len(bad) and outcomes[
        good.id
    ] == "accepted"
    return {**{name: e.id for name, e in bad.items()}, "good": good.id}


async def test_find_an_exam_lists_the_rejected_webhooks_that_name_it(
    world: ConsoleWorld, http: aiohttp.ClientSession
) -> None:
    ids = await seed(world)

    async def find(query: str) -> str:
        status, html = await get(http, f"{world.base}/console/exams?{query}", headers=BEARER)
        assert status == 200, html
        return html

    html = await find("by=test_id&q=REJ1TEST")
    assert "No exam found (but rejected webhooks name it" in html and ids["itep1"] in html
    assert "/console/exam?vendor=itep&amp;key=REJ1TEST" in html and "itep2" not in html
    assert ids["itep2"] not in html
    # The external id is in both an accepted exam and a rejected webhook: both are shown.
    html = await find("by=external_id&q=cand-9001")
    assert "/console/exam?vendor=itep&amp;key=OK1TEST" in html and ids["itep1"] in html
    # An email in another case; a Synap exam key; a Testpress external id and its exam key.
    assert ids["synap"] in await find("by=email&q=rej.CANDIDATE%40example.com")
    assert ids["synap"] in await find("by=key&q=attempt:att-555&vendor=synap")
    assert ids["synap"] not in await find("by=key&q=attempt:att-555&vendor=itep")
    html = await find("by=external_id&q=inst-777")
    assert ids["testpress"] in html and "/console/exam?vendor=testpress&amp;key=attempt%3A777" in html
    # Nothing names it: said as before.
    html = await find("by=test_id&q=NOSUCHTEST")
    assert "No exam found." in html and "rejected-found" not in html


async def test_the_webhook_page_names_its_exam_and_the_exam_page_shows_it(
    world: ConsoleWorld, http: aiohttp.ClientSession
) -> None:
    ids = await seed(world)
    status, html = await get(http, f"{world.base}/console/webhooks/{ids['itep1']}", headers=BEARER)
    assert status == 200
    names = re.search(r'<td id="names">(.*?)</td>', html, re.S)
    assert names is not None and "/console/exam?vendor=itep&amp;key=REJ1TEST" in names[1]
    assert "cand-9001" in names[1]
    # Its multipart body shown as an urlencoded one is: the field, its JSON pretty.
    assert "data = {\n  &#34;OID&#34;: &#34;cand-9001&#34;," in html
    status, html = await get(http, f"{world.base}/console/webhooks/{ids['garbage']}", headers=BEARER)
    assert "the body does not say" in html
    # The exam of a rejected webhook only: a page (not a 404) that says so and lists it.
    status, html = await get(http, f"{world.base}/console/exam?vendor=itep&key=REJ1TEST", headers=BEARER)
    assert status == 200 and "only rejected webhooks name it" in html and ids["itep1"] in html
    status, html = await get(
        http, f"{world.base}/console/exam?vendor=synap&key=attempt:att-555", headers=BEARER
    )
    assert status == 200 and ids["synap"] in html
    status, _ = await get(http, f"{world.base}/console/exam?vendor=itep&key=NOSUCHTEST", headers=BEARER)
    assert status == 404


async def test_the_rejected_list_filters_by_what_bodies_name_and_replay_all_asks_first(
    world: ConsoleWorld, http: aiohttp.ClientSession
) -> None:
    ids = await seed(world)
    csrf = await sign_in(world, http)
    status, html = await get(http, f"{world.base}/console/rejected?by=test_id&q=REJ2TEST")
    assert status == 200 and ids["itep2"] in html and ids["itep1"] not in html and ids["synap"] not in html
    status, html = await get(http, f"{world.base}/console/rejected?vendor=itep")
    assert ids["itep1"] in html and ids["itep2"] in html and ids["synap"] not in html
    status, html = await get(http, f"{world.base}/console/rejected")
    assert all(ids[k] in html for k in ("itep1", "itep2", "synap", "testpress", "garbage"))
    assert "/console/exam?vendor=itep&amp;key=REJ2TEST" in html  # the list names each exam too

    stored = dict(await world.router.pool.fetch("SELECT id::text, stored_at FROM raw_webhooks"))
    filters = {"csrf": csrf, "all": "1", "by": "external_id", "q": "cand-9001", "source": "", "since": ""}
    async with http.post(world.base + "/console/rejected/replay", data=filters) as response:
        html = await response.text()
        assert response.status == 200 and response.url.path == "/console/rejected/replay"
    assert "Replay 1 rejected webhook?" in html and 'id="confirm-replay"' in html
    # Cancel goes back to the list as it was filtered (not to the range the count pinned).
    assert 'href="/console/rejected?by=external_id&amp;q=cand-9001" id="cancel"' in html
    # Asking replayed nothing.
    await asyncio.sleep(0.3)
    assert dict(await world.router.pool.fetch("SELECT id::text, stored_at FROM raw_webhooks")) == stored
    # The confirmation carries the filter, the count and the moment it was counted (the end of the
    # range): confirming replays exactly that one.
    form = dict(re.findall(r'<input type="hidden" name="([a-z]+)" value="([^"]*)">', html))
    assert form["confirm"] == "1" and form["q"] == "cand-9001" and form["until"]
    assert datetime.fromisoformat(form["until"]) <= datetime.now(UTC)
    async with http.post(world.base + "/console/rejected/replay", data=form) as response:
        html = await response.text()
        assert response.url.path == "/console/replayed" and "Replayed 1 webhook" in html
    assert ids["itep1"] in html
    # The confirmation is a form like the others: without its CSRF token it is refused.
    async with http.post(
        world.base + "/console/rejected/replay", data={**form, "csrf": "forged"}, allow_redirects=False
    ) as response:
        assert response.status == 403


async def test_a_rejected_webhooks_names_are_an_index_search(world: ConsoleWorld) -> None:
    await seed(world)
    # The list as the console and the API ask for it (newest first, a page), searched by a name.
    params: list[object] = []
    condition = where(RejectedFilter(keys=["test_id:REJ1TEST"]), params)
    searched = f"SELECT id FROM raw_webhooks WHERE {condition} {NEWEST_FIRST} LIMIT 51"
    listed = f"SELECT id FROM raw_webhooks WHERE {where(RejectedFilter(), [])} {NEWEST_FIRST} LIMIT 51"
    async with world.router.pool.acquire() as conn, conn.transaction():
        await conn.execute("ANALYZE raw_webhooks")
        # Few rows here, so the planner would read them all anyway: forbid that, and the plan shows
        # whether an index can serve the query at all (none can when the expressions differ).
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {searched}", *params))
        assert "raw_webhooks_rejected_keys" in plan, plan
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {listed}"))
        assert "raw_webhooks_rejected_arrival" in plan, plan


async def test_a_parallel_scan_can_search_the_names_too(world: ConsoleWorld) -> None:
    """Without the index (dropped, or not chosen) the planner may scan in parallel workers, which
    cannot run the function's exception blocks: it is evaluated by the leader alone, not refused."""
    await seed(world)
    # Enough rows that the workers get some to read.
    await world.router.pool.execute(
        "INSERT INTO raw_webhooks (id, source, vendor, received_at, content_type, body, outcome)"
        " SELECT gen_random_uuid(), 'itep-bulk', 'itep', now(), 'application/json',"
        " convert_to('{\"TestID\": \"BULK' || g || '\"}', 'UTF8'), 'rejected' FROM generate_series(1, 2000) g"
    )
    params: list[object] = []
    condition = where(RejectedFilter(keys=["test_id:REJ1TEST"]), params)
    async with world.router.pool.acquire() as conn, conn.transaction():
        for setting in (
            "enable_indexscan = off",
            "enable_bitmapscan = off",
            "parallel_setup_cost = 0",
            "parallel_tuple_cost = 0",
            "min_parallel_table_scan_size = 0",
            "max_parallel_workers_per_gather = 2",
            "parallel_leader_participation = off",  # the workers would read every row
        ):
            await conn.execute(f"SET LOCAL {setting}")
        sql = f"SELECT count(*) FROM raw_webhooks WHERE {condition}"
        # Run by EXPLAIN ANALYZE too: a statement asyncpg prepares may be kept from parallel plans.
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN ANALYZE {sql}", *params))
        assert "rows=1 loops=1" in plan, plan
        assert await conn.fetchval(sql, *params) == 1
        # The webhook list itself may still be read in parallel: only the function stays out of it.
        assert await conn.fetchval("SELECT count(*) FROM raw_webhooks WHERE outcome = 'rejected'") == 2005


def _samples() -> list[RawEnvelope]:
    multipart, multipart_type = samples.itep_multipart(samples.ITEP_COMPLETE)
    form, form_type = samples.itep_urlencoded(samples.itep("Complete", OID=" cand-7 "))
    testpress = samples.testpress()
    testpress["institute_attempt_id"] = 5150
    return [
        samples.envelope(Vendor.ITEP, multipart, content_type=multipart_type),
        samples.envelope(Vendor.ITEP, form, content_type=form_type),
        samples.envelope(Vendor.INSPERA, samples.as_json(samples.inspera())),
        samples.envelope(Vendor.INSPERA, samples.as_json(samples.inspera(candidate_id=None))),
        samples.envelope(
            Vendor.SYNAP, samples.as_json(samples.synap_released()), event="exam.resultsReleased"
        ),
        samples.envelope(Vendor.TESTPRESS, samples.as_json(testpress)),
    ]


async def test_the_sql_reads_each_vendors_body_as_its_normalizer_does(
    database_url: str, db_schema: str
) -> None:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": db_schema})
    try:
        from workers.migrate import migrate

        await migrate(conn)
        for envelope in _samples():
            keys = await conn.fetchval(
                f"SELECT {KEYS} FROM (SELECT $1::text AS vendor, $2::text AS content_type, $3::bytea AS body) b",
                envelope.vendor.value,
                envelope.content_type,
                envelope.body,
            )
            [normalized] = normalize(envelope)
            event = normalized.event
            expected = {f"key:{event.exam.key}"} if event.exam else set()
            if event.exam and event.exam.test_id:
                expected.add(f"test_id:{event.exam.test_id}")
            if event.candidate and event.candidate.external_id:
                expected.add(f"external_id:{event.candidate.external_id}")
            if event.candidate and event.candidate.email:
                expected.add(f"email:{event.candidate.email.lower()}")
            assert set(keys) == expected, (envelope.vendor, keys)
        # What cannot be read names nothing, and never fails the insert of the row.
        for content_type, body in (
            ("application/json", b"\xff\xfe not UTF-8"),
            ("application/json", b"[1, 2]"),
            ("application/json", json.dumps({"TestID": "\u0000x"}).encode()),
            ("application/x-www-form-urlencoded", b"data=%zz"),
            ("application/x-www-form-urlencoded", b"other=1"),
            ("multipart/form-data", b"--x\r\n\r\n--x--"),
            ("multipart/form-data; boundary=x", b"no parts at all"),
        ):
            assert await conn.fetchval(f"SELECT {KEYS} FROM (SELECT 'itep' AS vendor, $1::text AS content_type,"
                                       " $2::bytea AS body) b", content_type, body) == [], body  # fmt: skip
    finally:
        await conn.close()


# -- the admin API ---------------------------------------------------------------------------------


async def test_the_api_lists_rejected_newest_first_by_arrival_with_since_on_arrival(
    world: ConsoleWorld, http: aiohttp.ClientSession
) -> None:
    base = datetime(2026, 11, 22, 8, tzinfo=UTC)
    # Stored in the order 0, 1, 2, 3 but received in the order 3, 1, 0, 2: arrival decides.
    arrivals = [base + timedelta(hours=h) for h in (2, 1, 3, 0)]
    made = []
    for n, at in enumerate(arrivals):
        body, content_type = samples.itep_urlencoded(
            samples.itep("Complete", test_id=f"ORD{n}TEST", TestDate="x")
        )
        envelope = samples.envelope(Vendor.ITEP, body, content_type=content_type, received_at=at)
        await world.router.publish_raw(envelope)
        await world.router.raw_stored(n + 1)  # one at a time: stored_at follows n
        made.append(envelope.id)

    async def call(**params: str) -> Any:
        async with http.get(world.base + "/v1/rejected-webhooks", params=params, headers=BEARER) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    page = await call()
    assert [r["id"] for r in page["rejected"]] == [made[2], made[0], made[1], made[3]]
    assert page["next"] is None and page["rejected"][0]["exam_key"] == "ORD2TEST"
    # `since` is on arrival (a date alone is its midnight, UTC), and so is `until`.
    page = await call(since="2026-11-22T09:30:00Z")
    assert [r["id"] for r in page["rejected"]] == [made[2], made[0]]
    page = await call(until="2026-11-22T09:30:00Z")
    assert [r["id"] for r in page["rejected"]] == [made[1], made[3]]
    assert len((await call(since="2026-11-22"))["rejected"]) == 4
    # A page at a time, by cursor.
    page = await call(limit="3")
    assert [r["id"] for r in page["rejected"]] == [made[2], made[0], made[1]] and page["next"]
    page = await call(limit="3", cursor=page["next"])
    assert [r["id"] for r in page["rejected"]] == [made[3]] and page["next"] is None
    # What the body names, as filters.
    page = await call(test_id="ORD1TEST")
    assert [r["id"] for r in page["rejected"]] == [made[1]]
    assert (await call(exam_key="ORD1TEST", vendor="synap"))["rejected"] == []
    async with http.get(
        world.base + "/v1/rejected-webhooks", params={"cursor": "nope"}, headers=BEARER
    ) as response:
        assert response.status == 422
    # The OpenAPI document says the order.
    async with http.get(world.base + "/openapi.json") as response:
        spec = await response.json()
    assert "newest first by arrival" in spec["paths"]["/v1/rejected-webhooks"]["get"]["summary"]
