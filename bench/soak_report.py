"""What the soak found, read back from PostgreSQL and the broker, and the bar it is held to:
every webhook answered 200 is stored (by id), none twice, and the counts add up."""

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from bench.soak_calls import Call, Kind
from bench.soak_load import Sent


@dataclass(frozen=True)
class Stored:
    rows: dict[str, tuple[str, str]]  # raw webhook id -> (outcome, md5 of the body)
    events: list[tuple[str, str]]  # per event: its id, md5 of its webhook's body
    natural_keys_twice: int  # (vendor, natural key) stored more than once


async def read_stored(db: asyncpg.Connection) -> Stored:
    rows = await db.fetch("SELECT id::text AS id, outcome, md5(body) AS digest FROM raw_webhooks")
    events = await db.fetch(
        "SELECT e.id::text AS id, md5(r.body) AS digest"
        " FROM events e JOIN raw_webhooks r ON r.id = e.webhook_id"
    )
    twice = await db.fetchval(
        "SELECT count(*) FROM (SELECT 1 FROM events GROUP BY vendor, natural_key HAVING count(*) > 1) t"
    )
    return Stored(
        {r["id"]: (r["outcome"], r["digest"]) for r in rows},
        [(e["id"], e["digest"]) for e in events],
        int(twice or 0),
    )


@dataclass(frozen=True)
class Queued:
    raw: int
    retry: int
    dead: int


@dataclass
class Verdict:
    lines: list[str] = field(default_factory=list)
    failed: int = 0

    def check(self, ok: bool, text: str) -> None:
        self.lines.append(f"{'PASS' if ok else 'FAIL'} {text}")
        self.failed += not ok


def _digest(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def judge(
    calls: Sequence[Call],
    sent: Sent,
    stored: Stored,
    queued: Queued,
    published: set[str],
    faults: Sequence[str],
) -> Verdict:
    v = Verdict()
    by_digest = {_digest(c.body): c for c in calls}
    answers = sent.answers
    statuses = Counter("none" if a.status is None else str(a.status) for a in answers)
    kinds = Counter(c.kind for c in calls)
    ids200 = [a.webhook_id or "" for a in answers if a.status == 200]
    set200 = set(ids200)
    not_answered_200: dict[str, str] = {
        _digest(c.body): "none" if a.status is None else str(a.status)
        for c, a in zip(calls, answers, strict=True)
        if a.status != 200
    }

    outcomes200 = Counter(stored.rows[i][0] for i in set200 if i in stored.rows)
    missing = set200 - stored.rows.keys()
    orphans = [d for i, (_, d) in stored.rows.items() if i not in set200]
    orphan_answers = Counter(not_answered_200.get(d, "200") for d in orphans)
    accepted = sum(1 for o, _ in stored.rows.values() if o == "accepted")
    rejected = len(stored.rows) - accepted

    event_calls = [by_digest.get(d) for _, d in stored.events]
    never_published = [i for i, _ in stored.events if i not in published]
    event_keys = Counter(c.key for c in event_calls if c is not None and c.key is not None)
    unknown_events = sum(1 for c in event_calls if c is None or c.key is None)
    expected_keys = {
        c.key
        for o, d in stored.rows.values()
        if (c := by_digest.get(d)) is not None and c.key is not None and o == "accepted"
    }
    keys200 = {c.key for c, a in zip(calls, answers, strict=True) if a.status == 200 and c.key is not None}
    wrong_outcome = [
        (None if c is None else c.kind, o)
        for o, d in stored.rows.values()
        if (c := by_digest.get(d)) is None or (o == "rejected") != (c.kind is Kind.UNDECODABLE)
    ]
    four = {s: n for s, n in sorted(statuses.items()) if s.startswith("4")}
    other = {s: n for s, n in statuses.items() if s not in {"200", "503"} and not s.startswith("4")}

    v.lines += [
        f"sent                 {len(calls):,} in {sent.seconds:.1f} s ({sent.rate:,.0f}/s): "
        + ", ".join(f"{k.value} {kinds[k]:,}" for k in Kind),
        f"faults               {'; '.join(faults)}",
        f"answered 200         {statuses['200']:,}",
        f"answered 503         {statuses['503']:,}",
        f"answered 4xx         {', '.join(f'{s}: {n:,}' for s, n in four.items()) or '0'}",
        f"other answers        {other or 0}",
        f"stored raw webhooks  {len(stored.rows):,} (accepted {accepted:,}, rejected {rejected:,});"
        f" of them answered 200: {sum(outcomes200.values()):,}, not answered 200 but stored: {len(orphans):,}"
        f" {dict(orphan_answers) or ''}",
        f"stored events        {len(stored.events):,} (distinct valid events sent and stored: {len(expected_keys):,})",
        f"duplicate events     {stored.natural_keys_twice} by natural key,"
        f" {sum(1 for n in event_keys.values() if n > 1)} by the soak's own event key",
        f"rejected             {rejected:,} (undecodable calls answered 200: "
        f"{sum(1 for c, a in zip(calls, answers, strict=True) if a.status == 200 and c.kind is Kind.UNDECODABLE):,})",
        f"still queued         {queued.raw + queued.retry:,} (raw {queued.raw:,}, retry tiers {queued.retry:,})",
        f"dead-lettered        {queued.dead:,}",
        f"published            {len(published):,} distinct event ids on the results exchange",
        "",
    ]
    v.check(
        not missing,
        f"every webhook answered 200 is stored: {len(set200) - len(missing):,} of {len(set200):,} ids found"
        + (f"; missing e.g. {sorted(missing)[:3]}" if missing else ""),
    )
    v.check(len(ids200) == len(set200), f"no webhook id answered twice ({len(ids200) - len(set200)} repeats)")
    v.check(
        sum(outcomes200.values()) == statuses["200"],
        f"200s = accepted + rejected rows with those ids: {statuses['200']:,} ="
        f" {outcomes200['accepted']:,} + {outcomes200['rejected']:,}",
    )
    stray = [d for d in orphans if d not in not_answered_200]
    v.check(
        not stray,
        f"rows not answered 200 are only calls that got 503 or no answer ({len(orphans)} such, {len(stray)} unexplained)",
    )
    v.check(
        sum(event_keys.values()) == len(event_keys) and stored.natural_keys_twice == 0 and not unknown_events,
        f"no event stored twice ({len(stored.events):,} events, {len(event_keys):,} distinct, {unknown_events} unknown)",
    )
    v.check(
        set(event_keys) == expected_keys and keys200 <= expected_keys,
        f"events = distinct valid event keys stored: {len(event_keys):,} = {len(expected_keys):,}"
        f" (answered 200: {len(keys200):,}, all included: {keys200 <= expected_keys})",
    )
    v.check(
        not wrong_outcome, f"undecodable calls rejected, all others accepted ({len(wrong_outcome)} wrong)"
    )
    v.check(
        statuses.get("401", 0) == kinds[Kind.BAD_SIGNATURE],
        f"every bad signature answered 401: {statuses.get('401', 0):,} of {kinds[Kind.BAD_SIGNATURE]:,}",
    )
    v.check(not other, f"no answer other than 200, 401 and 503 ({other or 'none'})")
    v.check(
        not never_published,
        f"every stored event reached the results exchange ({len(never_published)} never did)",
    )
    v.check(queued.raw + queued.retry + queued.dead == 0, "nothing left queued or dead-lettered")
    return v
