"""Replaying rejected webhooks after a fix, on the real broker and database; idempotent."""

import asyncio

import aio_pika

from common.replay import replay_dead_letters, replay_rejected
from devkit import samples
from schemas.envelope import encode_envelope
from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.support.pipeline import running_router
from workers.router.normalize import normalize
from workers.router.store import RawRow, store_batch


async def test_replayed_rejection_is_accepted_once_fixed_and_replay_is_idempotent(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    body = samples.as_json(samples.synap_released())
    async with running_router(amqp_url, database_url, topology, db_schema) as router:
        # A Synap source configured without its event, and a body that does not name it: rejected.
        unnamed = samples.synap_released()
        del unnamed["meta"]["eventName"]
        bad = samples.envelope(Vendor.SYNAP, samples.as_json(unnamed))
        await router.publish_raw(bad)
        await router.raw_stored(1)
        assert await router.pool.fetchval("SELECT outcome FROM raw_webhooks") == "rejected"

        # The "fix": the stored row now says which event its URL receives (as a corrected source would).
        await router.pool.execute("UPDATE raw_webhooks SET vendor_event = 'exam.resultsReleased'")
        async with router.pool.acquire() as conn:
            assert len(await replay_rejected(conn, router.channel, topology)) == 1
        [event] = await router.events(1)
        assert event.webhook_id == bad.id and event.type == "released"
        row = await router.pool.fetchrow("SELECT outcome, reason FROM raw_webhooks WHERE id = $1", bad.id)
        assert (row["outcome"], row["reason"]) == ("accepted", None)

        # Replaying again finds nothing rejected; re-sending the same webhook stores nothing new.
        async with router.pool.acquire() as conn:
            assert len(await replay_rejected(conn, router.channel, topology)) == 0
        await router.publish_raw(samples.envelope(Vendor.SYNAP, body, event="exam.resultsReleased"))
        await router.raw_stored(2)
        await router.no_more_events()
        assert await router.pool.fetchval("SELECT count(*) FROM events") == 1


async def test_replay_of_what_still_fails_keeps_it_rejected(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with running_router(amqp_url, database_url, topology, db_schema) as router:
        await router.raw_exchange.publish(aio_pika.Message(b"not an envelope"), routing_key="x")
        await router.raw_stored(1)
        first_stored = await router.pool.fetchval("SELECT stored_at FROM raw_webhooks")
        async with router.pool.acquire() as conn:
            assert len(await replay_rejected(conn, router.channel, topology)) == 1
        # It comes back under its stored id: the row is updated (still rejected), not duplicated.
        async with asyncio.timeout(10):
            while await router.pool.fetchval("SELECT stored_at FROM raw_webhooks") == first_stored:
                await asyncio.sleep(0.05)
        rows = await router.pool.fetch("SELECT outcome, body FROM raw_webhooks")
        assert [(r["outcome"], bytes(r["body"])) for r in rows] == [("rejected", b"not an envelope")]


async def test_replayed_dead_letter_publishes_what_it_stored_the_first_time(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    # Its first delivery stored the event and died before publishing it; the broker's delivery limit
    # then sent it to the dead letters (no headers of ours on it). Replayed, it must publish the event.
    sent = samples.envelope(Vendor.TESTPRESS, samples.as_json(samples.testpress(attempt_id=777)))
    [normalized] = normalize(sent)
    async with running_router(amqp_url, database_url, topology, db_schema) as router:
        async with router.pool.acquire() as conn:
            await store_batch(conn, [RawRow.of(sent)], [normalized])
        await router.channel.default_exchange.publish(
            aio_pika.Message(encode_envelope(sent), message_id=sent.id), routing_key=topology.dead_queue
        )
        assert await replay_dead_letters(router.channel, topology) == 1
        [event] = await router.events(1)
        assert event.id == normalized.event.id
        assert await router.pool.fetchval("SELECT count(*) FROM events") == 1
