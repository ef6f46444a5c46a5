"""Retention periods and erasure settings, read once at start-up. Periods use the one duration syntax
(`30d`, `12h`); 0 keeps that kind of data for ever. The defaults are in docs/data.md."""

from collections.abc import Mapping

import msgspec

from common.env import env_duration, env_flag, env_int

DAY = 86400.0


class RetentionSettings(msgspec.Struct, frozen=True, kw_only=True):
    # How long each kind of data is kept, from when it was stored (or, for deliveries, finished).
    raw: float = 30 * DAY  # accepted raw webhook bodies
    rejected: float = 90 * DAY  # rejected webhooks not replayed meanwhile (body and reason)
    events: float = 365 * DAY  # the personal fields of normalized events (candidate, scores, attributes)
    deliveries: float = 90 * DAY  # attempt logs of finished deliveries (subscribers' error texts)
    # Past its period a row is tombstoned: its content goes, its ids, times and outcome stay (the
    # audit trail). Set, the row is deleted instead; an exam's current event is kept even then.
    drop_audit: bool = False
    interval: float = 3600.0  # between purge rounds
    batch: int = 500  # rows per transaction: short locks, never a table-wide one
    pause: float = 0.05  # between batches, so that a large backlog does not crowd the routers
    # Erasure: scores (the exams' results, events' `result`) are kept in the tombstone only if set.
    erasure_keep_scores: bool = False
    erasure_poll: float = 2.0  # how often a worker looks for erasures to run
    erasure_lease: float = 600.0  # a running erasure whose worker died is taken again after this

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "RetentionSettings":
        d = cls()
        return cls(
            raw=env_duration(env, "RESULTBUS_RETAIN_RAW", d.raw),
            rejected=env_duration(env, "RESULTBUS_RETAIN_REJECTED", d.rejected),
            events=env_duration(env, "RESULTBUS_RETAIN_EVENTS", d.events),
            deliveries=env_duration(env, "RESULTBUS_RETAIN_DELIVERIES", d.deliveries),
            drop_audit=env_flag(env, "RESULTBUS_RETENTION_DROP_AUDIT"),
            interval=env_duration(env, "RESULTBUS_RETENTION_INTERVAL", d.interval, minimum=1.0),
            batch=env_int(env, "RESULTBUS_RETENTION_BATCH", d.batch, minimum=1),
            pause=env_duration(env, "RESULTBUS_RETENTION_PAUSE", d.pause),
            erasure_keep_scores=env_flag(env, "RESULTBUS_ERASURE_KEEP_SCORES"),
            erasure_poll=env_duration(env, "RESULTBUS_ERASURE_POLL", d.erasure_poll, minimum=0.01),
            erasure_lease=env_duration(env, "RESULTBUS_ERASURE_LEASE", d.erasure_lease, minimum=1.0),
        )
