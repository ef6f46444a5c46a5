-- Data protection: retention periods, erasure by data subject, and per-endpoint rate limits.
-- See docs/data.md for what each table holds, for how long, and how erasure treats it.

-- What was removed from a row, when, and by what ('retention' or 'erasure:<id>'). The row itself
-- (ids, times, outcome) is the audit trail and stays unless retention is told to drop it.
ALTER TABLE raw_webhooks ADD COLUMN purged_at timestamptz, ADD COLUMN purged_by text;
ALTER TABLE events ADD COLUMN purged_at timestamptz, ADD COLUMN purged_by text;
ALTER TABLE exams ADD COLUMN erased_at timestamptz;
ALTER TABLE deliveries ADD COLUMN purged_at timestamptz;

-- Retention finds what is due by age among the rows not purged yet: without these, each small
-- batch would scan the purged rows again.
CREATE INDEX raw_webhooks_unpurged ON raw_webhooks (outcome, stored_at) WHERE purged_at IS NULL;
CREATE INDEX events_unpurged ON events (stored_at) WHERE purged_at IS NULL;
CREATE INDEX deliveries_finished_unpurged ON deliveries (updated_at)
    WHERE purged_at IS NULL AND status <> 'pending';
-- Retention told to drop the audit trail deletes raw webhooks, and each delete checks the events'
-- foreign key: without an index, a scan of every event per row.
CREATE INDEX events_by_webhook ON events (webhook_id);
-- Erasure cancels the pending deliveries of the events it erased.
CREATE INDEX deliveries_by_event ON deliveries (event_id);

-- One row per erasure request. `subject` holds the identifier only until the erasure is done:
-- the finished record says who asked, when, what kind of identifier, what was touched and how
-- much, never the erased value itself.
CREATE TABLE erasures (
    id              uuid        PRIMARY KEY,
    subject_kind    text        NOT NULL CHECK (subject_kind IN ('email', 'candidate_id', 'external_id')),
    subject         text,
    vendor          text,
    requested_by    text        NOT NULL,
    reason          text,
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'running', 'completed')),
    requested_at    timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    completed_at    timestamptz,
    lease_until     timestamptz,            -- a running erasure whose worker died is taken again after this
    attempts        integer     NOT NULL DEFAULT 0,
    keep_scores     boolean     NOT NULL DEFAULT false,
    counts          jsonb       NOT NULL DEFAULT '{}',
    touched         jsonb       NOT NULL DEFAULT '{}',
    published_at    timestamptz             -- resultbus.erasure.completed confirmed on the results exchange
);
CREATE INDEX erasures_todo ON erasures (requested_at) WHERE status <> 'completed' OR published_at IS NULL;

-- Rate limits: a subscription may cap how fast its endpoint receives deliveries. Subscriptions
-- sharing an endpoint share one limit: the strictest of theirs.
ALTER TABLE subscriptions
    ADD COLUMN rate_limit integer CHECK (rate_limit IS NULL OR rate_limit BETWEEN 1 AND 10000),
    ADD COLUMN rate_limit_per text CHECK (rate_limit_per IS NULL OR rate_limit_per IN ('second', 'minute')),
    ADD CONSTRAINT subscriptions_rate_limit_whole CHECK ((rate_limit IS NULL) = (rate_limit_per IS NULL));

-- The sends of the last window per limited endpoint, shared by every delivery worker: a sliding
-- window log (at most `rate_limit` timestamps), updated under the row's lock in a short transaction.
CREATE TABLE endpoint_rate (
    endpoint_id  bigint        PRIMARY KEY REFERENCES endpoints (id) ON DELETE CASCADE,
    sent         timestamptz[] NOT NULL DEFAULT '{}'
);
