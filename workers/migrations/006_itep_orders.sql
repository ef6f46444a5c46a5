-- iTEP orders placed through resultbus (issue 13): one row per order, its history beside it.
CREATE TABLE itep_orders (
    id               uuid PRIMARY KEY,                -- sent to iTEP as trExternal_ID, back as OID
    reference        text        NOT NULL UNIQUE,     -- the caller's own id: an order sent twice is one
    product_code     text        NOT NULL,
    request          jsonb       NOT NULL,            -- the order as the caller sent it
    status           text        NOT NULL,
    problems         text[]      NOT NULL DEFAULT '{}',
    test_id          text,
    attempts         int         NOT NULL DEFAULT 0,  -- calls made to iTEP
    last_error       text,
    response_status  int,                             -- iTEP's last answer, kept as received
    response_body    text,
    response         jsonb,                           -- ... and as parsed, when it was JSON
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX itep_orders_test_id ON itep_orders (test_id) WHERE test_id IS NOT NULL;

-- Every change of an order, in order; also the outbox of the `resultbus.itep.order.*` events: a row
-- is written in the transaction that makes the change, and published by a fulfillment worker after.
CREATE TABLE itep_order_history (
    id            uuid PRIMARY KEY,
    seq           bigserial   NOT NULL,
    order_id      uuid        NOT NULL REFERENCES itep_orders (id) ON DELETE CASCADE,
    change        text        NOT NULL,   -- the new status, `result` or `conflict`
    status        text        NOT NULL,   -- the order's status after the change
    event_id      uuid,                   -- the result event behind it, if any
    detail        text,
    at            timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz             -- null: still to be published
);
CREATE INDEX itep_order_history_order ON itep_order_history (order_id, seq);
CREATE INDEX itep_order_history_unpublished ON itep_order_history (seq) WHERE published_at IS NULL;
