"""The rules of the delivery order and claims, against the real database (workers/delivery/store.py and
the functions of migrations 013 and 016), each the answer to a way a delivery could be lost, stuck, sent out of
order or sent twice: found by a review of the delivery redesign and kept here so that it stays found."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from admin import replay as admin_replay
from admin import store as admin_store
from admin import wire
from common.settings import WorkerSettings
from gradebook import crosswalk_db
from schemas.event import EventHead, ExamKey, ResultEvent
from subscribers.endpoint import normalize_endpoint
from subscribers.signing import generate_secret
from tests.support.delivery import make_event
from tests.support.gradebook_world import sample_synap
from vendors.base import Normalized
from workers.delivery import store
from workers.migrate import migrate
from workers.retention.erasure import _ERASE_DELIVERIES
from workers.router.store import RawRow, store_batch


@pytest.fixture
async def pool(database_url: str, db_schema: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(database_url, server_settings={"search_path": db_schema})
    assert created is not None
    async with created.acquire() as conn:
        await migrate(conn)
    yield created
    await created.close()


async def subscribe(pool: asyncpg.Pool, **filters: object) -> str:
    url = f"https://subscriber.example.com/{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn:
        body = wire.SubscriptionCreate(url=url, **filters)  # type: ignore[arg-type]
        return (
            await admin_store.create_subscription(conn, body, normalize_endpoint(url), generate_secret())
        ).id


async def stored(pool: asyncpg.Pool, event: ResultEvent) -> None:
    raw = RawRow(
        id=event.webhook_id,
        source=event.source,
        vendor=event.vendor.value,
        received_at=event.received_at,
        content_type="application/json",
        body=b"{}",
    )
    async with pool.acquire() as conn:
        await store_batch(conn, [raw], [Normalized(event.id, event)], republish={event.id})


def fanning(event: ResultEvent) -> EventHead:
    """The head the fan-out decodes from the event's body."""
    assert event.exam is not None
    return EventHead(event.id, event.vendor.value, event.source, event.type, ExamKey(event.exam.key))


async def fan_out(pool: asyncpg.Pool, event: ResultEvent, *, recovering: bool = False) -> list[store.Ready]:
    async with pool.acquire() as conn:
        [ready] = await store.create_deliveries(conn, [(fanning(event), recovering)])
        return ready


async def statuses(pool: asyncpg.Pool, subscription_id: str) -> dict[str, str]:
    rows = await pool.fetch(
        "SELECT event_type, status FROM deliveries WHERE subscription_id = $1", uuid.UUID(subscription_id)
    )
    return {r["event_type"]: r["status"] for r in rows}


def settlement(status: str) -> store.Settlement:
    return store.Settlement(
        status=status, made=True, attempted_at=datetime.now(UTC), status_code=200, outcome="succeeded"
    )


async def test_latest_never_lets_an_event_that_moved_nothing_supersede_a_pending_grade(
    pool: asyncpg.Pool,
) -> None:
    subscription = await subscribe(pool, delivery_order="latest")
    graded = make_event(type_="completed", exam="L1")
    note = make_event(type_="event.proctoring_note", exam="L1")  # no status: moves nothing
    for event in (graded, note):
        await stored(pool, event)
        await fan_out(pool, event)
    # The grade is still to be sent; the note waits behind it (the same version): nothing superseded.
    assert await statuses(pool, subscription) == {"completed": "pending", "event.proctoring_note": "waiting"}
    invalidated = make_event(type_="invalidated", exam="L1")
    await stored(pool, invalidated)
    await fan_out(pool, invalidated)
    # A newer version supersedes both.
    assert await statuses(pool, subscription) == {
        "completed": "superseded",
        "event.proctoring_note": "superseded",
        "invalidated": "pending",
    }


async def test_a_fan_out_handed_out_again_hands_out_what_its_first_run_released(pool: asyncpg.Pool) -> None:
    subscription = await subscribe(pool, event_types=["completed"])
    finished, completed = make_event(type_="finished", exam="R1"), make_event(type_="completed", exam="R1")
    await stored(pool, finished)
    await stored(pool, completed)
    assert await fan_out(pool, completed) == []  # waits for the Finished's fan-out
    (released,) = await fan_out(pool, finished)  # no delivery of its own: it releases the Completed's
    assert released.event_id == completed.id
    # Its tasks were not confirmed (the broker hiccuped): the event comes back, and hands them out again.
    again = await fan_out(pool, finished, recovering=True)
    assert [r.event_id for r in again] == [completed.id]
    assert await statuses(pool, subscription) == {"completed": "pending"}


async def test_a_claim_is_taken_over_only_once_its_workers_lock_is_free(
    pool: asyncpg.Pool, database_url: str, db_schema: str
) -> None:
    await subscribe(pool)
    event = make_event()
    await stored(pool, event)
    (ready,) = await fan_out(pool, event)
    worker = await asyncpg.connect(database_url, server_settings={"search_path": db_schema})
    try:
        await worker.execute("SELECT pg_advisory_lock(delivery_worker_lock_class(), 4242)")
        async with pool.acquire() as conn:
            (first,) = await store.claim(conn, [(ready.delivery_id, 1, False)], 4242)
            assert first is not None and first.claimed
            # The broker hands the task out again (its worker's connection to it went) while that
            # worker still runs: the copy does not take the claim over.
            (copy,) = await store.claim(conn, [(ready.delivery_id, 1, True)], 7)
            assert copy is not None and not copy.claimed and copy.state.claimed_elsewhere
    finally:
        await worker.close()  # the worker is gone: its lock with it
    async with pool.acquire() as conn:
        (taken,) = await store.claim(conn, [(ready.delivery_id, 1, True)], 7)
    assert taken is not None and taken.claimed


async def test_a_replay_goes_after_what_of_the_exam_is_unsettled_and_never_beside_an_attempt(
    pool: asyncpg.Pool,
) -> None:
    subscription = await subscribe(pool)
    first, second = make_event(type_="finished", exam="P1"), make_event(type_="completed", exam="P1")
    for event in (first, second):
        await stored(pool, event)
    (one,) = await fan_out(pool, first)
    async with pool.acquire() as conn:
        await store.settle(conn, [(one.delivery_id, settlement("failed"))], ["itep/P1"])
        (two,) = await fan_out(pool, second)
        (claim,) = await store.claim(conn, [(two.delivery_id, 1, False)], 1)
        assert claim is not None and claim.claimed  # the second is being posted
        # Replaying the first now: it waits for the second, rather than going beside it.
        replayed = await admin_store.replay_one(conn, subscription, first.id)
        assert replayed is not None and [r[3] for r in replayed] == ["waiting"]
        # And the second, being posted, is not replayed under the worker's feet.
        assert await admin_store.replay_one(conn, subscription, second.id) == []
        done = await store.settle(conn, [(two.delivery_id, settlement("succeeded"))], ["itep/P1"])
    assert [r.delivery_id for r in done.released] == [one.delivery_id]  # its turn now


async def test_an_api_replay_of_a_delivery_being_attempted_is_a_conflict(pool: asyncpg.Pool) -> None:
    subscription = await subscribe(pool)
    event = make_event()
    await stored(pool, event)
    (ready,) = await fan_out(pool, event)
    async with pool.acquire() as conn:
        await store.claim(conn, [(ready.delivery_id, 1, False)], 1)

    class Sink:
        async def now_all(self, tasks: object) -> None:
            raise AssertionError("nothing is to be queued")

    with pytest.raises(admin_replay.BeingAttempted):
        await admin_replay.replay(pool, Sink(), subscription, event_id=event.id)


async def test_a_mapping_stored_while_a_result_is_being_held_releases_it(pool: asyncpg.Pool) -> None:
    subscription = await subscribe(pool)
    event = sample_synap()
    async with pool.acquire() as conn:
        found = await crosswalk_db.lookup(conn, event)  # the worker's look-up: no mapping yet
        assert found.row is None
        # The registrar's mapping lands between the look-up and the hold (its release finds nothing).
        wanted = crosswalk_db.Wanted(vendor=event.vendor, candidate="user-77", student="S-77")
        async with conn.transaction():
            await crosswalk_db.put_mapping(conn, wanted, by="registrar@example.com", source="api")
        async with conn.transaction():
            await crosswalk_db.hold(
                conn, subscription_id=subscription, event=event, reason="no student", seen=found.row
            )
        # The hold saw the table change under it: released at once, for the worker to send.
        assert await crosswalk_db.held(conn, subscription_id=subscription) == []
        (released,) = await crosswalk_db.held(conn, subscription_id=subscription, waiting_only=False)
        assert released.released_at is not None


async def test_settings_of_a_database_in_another_isolation_level_are_refused(
    pool: asyncpg.Pool, database_url: str, db_schema: str
) -> None:
    # The order's functions read, after the exam's lock, what was committed before it: REPEATABLE READ
    # would read from before the lock and lose wake-ups. They refuse to run that way.
    settings = WorkerSettings(database_url=database_url, database_schema=db_schema)
    conn = await asyncpg.connect(
        settings.database_url,
        server_settings={"search_path": db_schema, "default_transaction_isolation": "repeatable read"},
    )
    try:
        with pytest.raises(asyncpg.RaiseError, match="needs READ COMMITTED"):
            await store.settle(conn, [(str(uuid.uuid4()), settlement("succeeded"))], ["itep/X"])
    finally:
        await conn.close()


async def test_an_erasure_cancels_what_of_the_exam_waits_behind_what_it_erases(pool: asyncpg.Pool) -> None:
    subscription = await subscribe(pool)
    events = [make_event(type_=t, exam="E1") for t in ("finished", "completed", "released")]
    for event in events:
        await stored(pool, event)
        await fan_out(pool, event)
    assert await statuses(pool, subscription) == {
        "finished": "pending",
        "completed": "waiting",
        "released": "waiting",
    }
    # Only the first event names the candidate (say): the erasure cancels the exam's others too,
    # else they would wait for ever behind a delivery that will never settle.
    async with pool.acquire() as conn:
        await conn.fetch(_ERASE_DELIVERIES, [events[0].id])
    assert set((await statuses(pool, subscription)).values()) == {"cancelled"}


async def test_a_group_of_fan_outs_decides_each_event_as_it_would_alone(pool: asyncpg.Pool) -> None:
    # The fan-out stores the events in hand in one call (migration 016), never two of one exam.
    subscription = await subscribe(pool, event_types=["completed"])
    exams = {
        key: (make_event(type_="finished", exam=key), make_event(type_="completed", exam=key)) for key in "AB"
    }
    for finished, completed in exams.values():
        await stored(pool, finished)
        await stored(pool, completed)

    async with pool.acquire() as conn:
        # Each Completed waits for its exam's Finished to be fanned out.
        assert await store.create_deliveries(conn, [(fanning(c), False) for _, c in exams.values()]) == [
            [],
            [],
        ]
        # Each Finished (no delivery of its own) releases its exam's Completed, and only that.
        released = await store.create_deliveries(conn, [(fanning(f), False) for f, _ in exams.values()])
    assert [[r.event_id for r in ready] for ready in released] == [[c.id] for _, c in exams.values()]
    rows = await pool.fetch(
        "SELECT event_id::text, status FROM deliveries WHERE subscription_id = $1", uuid.UUID(subscription)
    )
    assert sorted((r["event_id"], r["status"]) for r in rows) == sorted(
        (c.id, "pending") for _, c in exams.values()
    )


async def test_warming_a_connection_changes_nothing(pool: asyncpg.Pool) -> None:
    await subscribe(pool)
    event = make_event(exam="W1")
    await stored(pool, event)
    await fan_out(pool, event)
    counts = "SELECT (SELECT count(*) FROM deliveries), (SELECT count(*) FROM delivery_attempts), (SELECT count(*) FROM events WHERE fanned_out_at IS NULL)"
    before = await pool.fetchrow(counts)
    async with pool.acquire() as conn:
        await store.warm(conn)
    assert await pool.fetchrow(counts) == before
