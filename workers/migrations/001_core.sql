-- Every raw webhook, accepted or rejected, exactly as the vendor sent it.
CREATE TABLE raw_webhooks (
    id            uuid PRIMARY KEY,            -- the id the ingress answered with
    source        text        NOT NULL,
    vendor        text        NOT NULL,
    received_at   timestamptz NOT NULL,
    content_type  text        NOT NULL,
    body          bytea       NOT NULL,
    vendor_event  text,                        -- Synap's configured event
    remote        text,
    outcome       text        NOT NULL CHECK (outcome IN ('accepted', 'rejected')),
    reason        text,                        -- why it was rejected
    stored_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX raw_webhooks_rejected ON raw_webhooks (stored_at) WHERE outcome = 'rejected';

-- Normalized events, one per vendor event: `id` is derived from the vendor's natural key, so a
-- webhook sent twice (or replayed) gives the same id and is stored once.
CREATE TABLE events (
    id            uuid PRIMARY KEY,
    vendor        text        NOT NULL,
    natural_key   text        NOT NULL,
    webhook_id    uuid        NOT NULL REFERENCES raw_webhooks (id),
    type          text        NOT NULL,
    status        text,
    exam_key      text,
    occurred_at   timestamptz,
    received_at   timestamptz NOT NULL,
    applied       boolean     NOT NULL DEFAULT false,  -- did it move the exam's state?
    published_at  timestamptz,                          -- null until the results exchange confirmed it
    payload       jsonb       NOT NULL,                 -- the normalized event as published
    stored_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (vendor, natural_key)
);
CREATE INDEX events_exam ON events (vendor, exam_key, stored_at);
CREATE INDEX events_unpublished ON events (stored_at) WHERE published_at IS NULL;

-- Each exam's current state; its history is its rows in `events`.
CREATE TABLE exams (
    vendor        text        NOT NULL,
    exam_key      text        NOT NULL,
    status        text,
    occurred_at   timestamptz,
    event_id      uuid,
    result        jsonb,
    candidate     jsonb,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vendor, exam_key)
);
