-- Delivering results to subscribers (admin API, delivery workers) and, later, checking endpoints.

-- One row per distinct endpoint: the URL normalized (scheme and host lower case, default port
-- dropped), so that subscriptions differing only in trivia share it. The checker's state lives here:
-- it verifies each endpoint once per round, however many subscriptions use it.
CREATE TABLE endpoints (
    id                    bigserial   PRIMARY KEY,
    url                   text        NOT NULL UNIQUE,
    consecutive_failures  integer     NOT NULL DEFAULT 0,
    failing_since         timestamptz,
    last_checked_at       timestamptz,
    last_error            text,
    next_check_at         timestamptz NOT NULL DEFAULT now(),
    created_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscriptions (
    id                 uuid        PRIMARY KEY,
    url                text        NOT NULL,                -- as the subscriber gave it
    endpoint_id        bigint      NOT NULL REFERENCES endpoints (id),
    description        text,
    -- Filters: an empty array matches everything. Event types may end in `*` (`event.*`).
    vendors            text[]      NOT NULL DEFAULT '{}',
    sources            text[]      NOT NULL DEFAULT '{}',
    event_types        text[]      NOT NULL DEFAULT '{}',
    -- active: delivered to; disabled: by an operator or a 410 Gone; unsubscribed: by the checker.
    status             text        NOT NULL DEFAULT 'active'
                                   CHECK (status IN ('active', 'disabled', 'unsubscribed')),
    status_reason      text,
    status_changed_at  timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_active ON subscriptions (endpoint_id) WHERE status = 'active';

-- Signing secrets. Several sign at once during a rotation: the old one until `expires_at`.
CREATE TABLE subscription_secrets (
    id               bigserial   PRIMARY KEY,
    subscription_id  uuid        NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    secret           text        NOT NULL,                 -- whsec_<base64>
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz                           -- null: the current secret
);
CREATE INDEX subscription_secrets_by_subscription ON subscription_secrets (subscription_id);

-- One delivery per (subscription, event); a replay adds attempts to the same row.
CREATE TABLE deliveries (
    id               uuid        PRIMARY KEY,
    subscription_id  uuid        NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    event_id         uuid        NOT NULL,
    event_type       text        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
    attempts         integer     NOT NULL DEFAULT 0,
    last_status      integer,
    last_error       text,
    next_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, created_at);
CREATE INDEX deliveries_failed ON deliveries (subscription_id, updated_at) WHERE status = 'failed';

-- Every attempt, kept.
CREATE TABLE delivery_attempts (
    id               bigserial   PRIMARY KEY,
    delivery_id      uuid        NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt          integer     NOT NULL,
    attempted_at     timestamptz NOT NULL,
    status_code      integer,
    latency_ms       double precision NOT NULL,
    error            text,
    outcome          text        NOT NULL,   -- succeeded | retry | failed | gone
    next_attempt_at  timestamptz
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id, attempt);
