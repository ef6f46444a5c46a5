-- Each exam's events reach every subscription in order (issue 20). See docs/subscribers.md,
-- "Order per exam", for the rules; workers/delivery/store.py for the statements that keep them.

-- An exam's position: `version` grows by one with every event that moved its state, `seq` with every
-- event recorded for it (a late or vendor event moves nothing but still has its place in the order).
ALTER TABLE exams ADD COLUMN version integer NOT NULL DEFAULT 0, ADD COLUMN seq bigint NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN exam_seq bigint, ADD COLUMN exam_version integer;

-- `all`: every event, in order; `latest`: an event still waiting is superseded by a newer one.
-- `matching_since`: when the subscription's filters or status last changed: only events stored since
-- then are ones it would have been given, so only those are waited for.
ALTER TABLE subscriptions
    ADD COLUMN delivery_order text NOT NULL DEFAULT 'all' CHECK (delivery_order IN ('all', 'latest')),
    ADD COLUMN matching_since timestamptz NOT NULL DEFAULT now();

-- waiting: behind an earlier delivery of the same exam (no task anywhere: the earlier one's
-- settlement releases it); pending: has a task, in the attempts queue or a delay tier, and
-- `claimed_at` while an attempt of it is being made; superseded: a newer event of the exam went instead.
ALTER TABLE deliveries
    ADD COLUMN vendor text,
    ADD COLUMN exam_key text,
    ADD COLUMN exam_seq bigint,
    ADD COLUMN claimed_at timestamptz;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('waiting', 'pending', 'succeeded', 'failed', 'cancelled', 'superseded'));
-- An exam's unsettled deliveries per subscription, in order: what every ordering decision reads.
CREATE INDEX deliveries_exam_order ON deliveries (subscription_id, vendor, exam_key, exam_seq)
    WHERE status IN ('waiting', 'pending');

-- Where and how to send a subscription's deliveries as it stands now: its URL and state, the
-- endpoint it shares, the secrets that sign (newest first), and the endpoint's rate limit (the
-- strictest of its active subscriptions', see workers/delivery/rate_limit.py).
CREATE VIEW delivery_targets AS
SELECT s.id AS subscription_id, s.url, s.status, s.delivery_order, e.url AS endpoint, e.id AS endpoint_id,
       array(SELECT k.secret FROM subscription_secrets k
             WHERE k.subscription_id = s.id AND (k.expires_at IS NULL OR k.expires_at > now())
             ORDER BY k.created_at DESC, k.id DESC) AS secrets,
       rl.rate_limit, rl.rate_period
FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
LEFT JOIN LATERAL (
    SELECT o.rate_limit, CASE o.rate_limit_per WHEN 'minute' THEN 60.0 ELSE 1.0 END AS rate_period
    FROM subscriptions o
    WHERE o.endpoint_id = s.endpoint_id AND o.status = 'active' AND o.rate_limit IS NOT NULL
    ORDER BY o.rate_limit / CASE o.rate_limit_per WHEN 'minute' THEN 60.0 ELSE 1.0 END
    LIMIT 1
) rl ON true;

-- Retention leaves a delivery alone until it is settled: waiting is not settled either.
DROP INDEX deliveries_finished_unpurged;
CREATE INDEX deliveries_finished_unpurged ON deliveries (updated_at)
    WHERE purged_at IS NULL AND status NOT IN ('pending', 'waiting');
