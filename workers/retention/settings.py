"""Retention periods and erasure settings, read once at start-up. Periods use the one duration syntax
(`30d`, `12h`); 0 keeps that kind of data for ever. The defaults are in docs/data.md."""

from collections.abc import Mapping

import msgspec

from common.env import Group, duration, flag, integer
from common.settings import BROKER_AND_DATABASE

DAY = 86400.0

# How long each kind of data is kept, from when it was stored (or, for deliveries, finished).
RAW = duration("RESULTBUS_RETAIN_RAW", 30 * DAY, help="bodies of accepted raw webhooks (0: for ever)")
REJECTED = duration("RESULTBUS_RETAIN_REJECTED", 90 * DAY, help="rejected webhooks not replayed meanwhile")
EVENTS = duration("RESULTBUS_RETAIN_EVENTS", 365 * DAY, help="the personal fields of normalized events")
DELIVERIES = duration("RESULTBUS_RETAIN_DELIVERIES", 90 * DAY, help="attempt logs of finished deliveries")
# Past its period a row is tombstoned: its content goes, its ids, times and outcome stay (the audit
# trail). Set, the row is deleted instead; an exam's current event is kept even then.
DROP_AUDIT = flag("RESULTBUS_RETENTION_DROP_AUDIT", help="delete rows past their period, not tombstone them")
INTERVAL = duration("RESULTBUS_RETENTION_INTERVAL", 3600.0, minimum=1.0, help="between purge rounds")
# Short locks, never a table-wide one; the pause keeps a large backlog from crowding the routers.
BATCH = integer("RESULTBUS_RETENTION_BATCH", 500, minimum=1, help="rows per transaction")
PAUSE = duration("RESULTBUS_RETENTION_PAUSE", 0.05, help="between two batches")
KEEP_SCORES = flag("RESULTBUS_ERASURE_KEEP_SCORES", help="an erasure keeps the scores in the tombstones")
ERASURE_POLL = duration("RESULTBUS_ERASURE_POLL", 2.0, minimum=0.01, help="how often erasures are looked for")
ERASURE_LEASE = duration(
    "RESULTBUS_ERASURE_LEASE",
    600.0,
    minimum=1.0,
    help="a running erasure whose worker died is taken again after",
)

SETTINGS = (
    BROKER_AND_DATABASE,
    Group(
        "retention and erasure",
        (
            RAW,
            REJECTED,
            EVENTS,
            DELIVERIES,
            DROP_AUDIT,
            INTERVAL,
            BATCH,
            PAUSE,
            KEEP_SCORES,
            ERASURE_POLL,
            ERASURE_LEASE,
        ),
    ),
)


class RetentionSettings(msgspec.Struct, frozen=True, kw_only=True):
    raw: float = RAW.default
    rejected: float = REJECTED.default
    events: float = EVENTS.default
    deliveries: float = DELIVERIES.default
    drop_audit: bool = False
    interval: float = INTERVAL.default
    batch: int = BATCH.default
    pause: float = PAUSE.default
    # Erasure: scores (the exams' results, events' `result`) are kept in the tombstone only if set.
    erasure_keep_scores: bool = False
    erasure_poll: float = ERASURE_POLL.default
    erasure_lease: float = ERASURE_LEASE.default

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "RetentionSettings":
        return cls(
            raw=RAW.read(env),
            rejected=REJECTED.read(env),
            events=EVENTS.read(env),
            deliveries=DELIVERIES.read(env),
            drop_audit=DROP_AUDIT.read(env),
            interval=INTERVAL.read(env),
            batch=BATCH.read(env),
            pause=PAUSE.read(env),
            erasure_keep_scores=KEEP_SCORES.read(env),
            erasure_poll=ERASURE_POLL.read(env),
            erasure_lease=ERASURE_LEASE.read(env),
        )
