-- Redelivered raw messages a router has started processing and not finished (see
-- workers/router/suspects.py). Rows live for seconds; one left behind names a message that kept
-- ending routers, until it is set aside and the row removed.
CREATE TABLE router_suspects (
    message_key  text        PRIMARY KEY,
    started      integer     NOT NULL DEFAULT 1,
    first_at     timestamptz NOT NULL DEFAULT now(),
    last_at      timestamptz NOT NULL DEFAULT now()
);
