-- Each exam's events reach every subscription in order (issue 20). See docs/subscribers.md,
-- "Order per exam", for the rules; workers/delivery/store.py for the statements that keep them.

-- An exam's position: `version` grows by one with every event that moved its state, `seq` with every
-- event recorded for it (a late or vendor event moves nothing but still has its place in the order).
ALTER TABLE exams ADD COLUMN version integer NOT NULL DEFAULT 0, ADD COLUMN seq bigint NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN exam_seq bigint, ADD COLUMN exam_version integer;

-- When a delivery worker fanned the event out: until then, a later event of its exam waits for it.
ALTER TABLE events ADD COLUMN fanned_out_at timestamptz;

-- `all`: every event, in order; `latest`: an event still waiting is superseded by a newer one.
ALTER TABLE subscriptions
    ADD COLUMN delivery_order text NOT NULL DEFAULT 'all' CHECK (delivery_order IN ('all', 'latest'));

-- waiting: behind an earlier delivery of the same exam (no task anywhere: the earlier one's
-- settlement releases it); pending: has a task, in the attempts queue or a delay tier, and
-- `claimed_at` while an attempt of it is being made; held: a gradebook result whose candidate is not
-- mapped yet (gradebook_holds says why; a mapping resumes it); superseded: a newer event of the exam
-- went instead.
-- `exam_version`: the exam's version after the event (a newer version is what supersedes, for
-- `latest`: an event that moved nothing never does). `claimed_by`: the worker making the attempt,
-- which holds a session advisory lock on it for its life (`delivery_worker_lock`): a task the broker
-- hands out again may take a claim over only once that lock is free (its worker is gone).
ALTER TABLE deliveries
    ADD COLUMN vendor text,
    ADD COLUMN exam_key text,
    ADD COLUMN exam_seq bigint,
    ADD COLUMN exam_version integer,
    ADD COLUMN claimed_at timestamptz,
    ADD COLUMN claimed_by integer;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('waiting', 'pending', 'held', 'succeeded', 'failed', 'cancelled', 'superseded'));
-- An exam's deliveries, per subscription, in order: what every ordering decision reads.
CREATE INDEX deliveries_exam_order ON deliveries (vendor, exam_key, subscription_id, exam_seq)
    WHERE exam_seq IS NOT NULL;

-- Where and how to send a subscription's deliveries as it stands now: its URL and state, its
-- destination (a webhook, or a gradebook and its configuration), the endpoint it shares, the secrets
-- that sign (newest first), and the endpoint's rate limit (the strictest of its active
-- subscriptions', see workers/delivery/rate_limit.py).
CREATE VIEW delivery_targets AS
SELECT s.id AS subscription_id, s.url, s.status, s.delivery_order, s.destination_kind, s.destination,
       e.url AS endpoint, e.id AS endpoint_id,
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

-- Retention leaves a delivery alone until it is settled: waiting and held are not settled either.
DROP INDEX deliveries_finished_unpurged;
CREATE INDEX deliveries_finished_unpurged ON deliveries (updated_at)
    WHERE purged_at IS NULL AND status NOT IN ('pending', 'waiting', 'held');

-- The two decisions about an exam's order, each under that exam's lock (taken first: every statement
-- after it reads what other transactions committed before it was granted), so that a delivery never
-- waits for one whose settlement did not see it. Functions, so that the lock and the statements
-- after it are one round trip.

-- The key of a delivery worker's liveness lock (session-level, held while the worker runs).
CREATE FUNCTION delivery_worker_lock_class() RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT hashtext(current_schema() || ' delivery worker')
$$;

CREATE FUNCTION delivery_order_lock(exams text[]) RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtext(current_schema() || ' delivery order'), hashtext(k))
    FROM unnest(exams) AS k;  -- the caller sorts them: one order, no deadlock
$$;

-- Whether a delivery `x` of an exam must wait: an earlier delivery of the exam for the same
-- subscription is unsettled, or (unless only the latest is wanted) an earlier event of the exam has
-- not been fanned out yet (its delivery, if it gets one, comes first).
CREATE FUNCTION delivery_blocked(x_subscription uuid, x_vendor text, x_exam text, x_seq bigint, x_order text)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM deliveries b
                   WHERE b.subscription_id = x_subscription AND b.vendor = x_vendor AND b.exam_key = x_exam
                     AND b.exam_seq < x_seq AND b.status IN ('waiting', 'pending', 'held'))
        OR (x_order = 'all' AND EXISTS (SELECT 1 FROM events p
                   WHERE p.vendor = x_vendor AND p.exam_key = x_exam AND p.exam_seq < x_seq
                     AND p.fanned_out_at IS NULL));
$$;

-- The waiting deliveries of one exam that may now go, set pending; returned for their tasks.
CREATE FUNCTION delivery_release(r_vendor text, r_exam text, r_subscriptions uuid[])
RETURNS TABLE (delivery_id uuid, subscription_id uuid, event_id uuid, attempts integer)
LANGUAGE sql AS $$
    UPDATE deliveries x SET status = 'pending', updated_at = now()
    FROM subscriptions s
    WHERE x.vendor = r_vendor AND x.exam_key = r_exam AND x.exam_seq IS NOT NULL AND x.status = 'waiting'
      AND (r_subscriptions IS NULL OR x.subscription_id = ANY (r_subscriptions))
      AND s.id = x.subscription_id
      AND NOT delivery_blocked(x.subscription_id, x.vendor, x.exam_key, x.exam_seq, s.delivery_order)
    RETURNING x.id, x.subscription_id, x.event_id, x.attempts;
$$;

-- The fan-out of one event: its deliveries to the active subscriptions whose filters match it (an
-- empty filter matches everything; an event type filter may end in `*`), each in its place in the
-- exam's order, with the superseded notes; the event marked fanned out, and what of its exam waited
-- for that released. Returns the deliveries to hand tasks to now: created pending, released, or, when
-- `recovering` (an earlier fan-out of the event may have stopped before publishing them), left
-- pending and never attempted by one before.
CREATE FUNCTION deliveries_create(p_event uuid, p_vendor text, p_source text, p_type text, p_exam text,
                                  recovering boolean)
RETURNS TABLE (delivery_id uuid, subscription_id uuid, event_id uuid, attempts integer)
LANGUAGE plpgsql AS $$
DECLARE
    seq bigint;
    ver integer;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        -- Every statement after the lock must see what was committed before it was granted.
        RAISE EXCEPTION 'resultbus delivery order needs READ COMMITTED, not %', current_setting('transaction_isolation');
    END IF;
    SELECT e.exam_seq, e.exam_version INTO seq, ver FROM events e WHERE e.id = p_event AND e.exam_key = p_exam;
    IF seq IS NOT NULL THEN
        PERFORM delivery_order_lock(ARRAY[p_vendor || '/' || p_exam]);
    END IF;
    RETURN QUERY
    WITH m AS (
        SELECT s.id AS subscription_id, s.delivery_order FROM subscriptions s
        WHERE s.status = 'active'
          AND (cardinality(s.vendors) = 0 OR p_vendor = ANY (s.vendors))
          AND (cardinality(s.sources) = 0 OR p_source = ANY (s.sources))
          AND (cardinality(s.event_types) = 0 OR EXISTS (
                SELECT 1 FROM unnest(s.event_types) AS f(t)
                WHERE f.t = p_type OR (right(f.t, 1) = '*' AND starts_with(p_type, left(f.t, -1)))))
          AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.subscription_id = s.id AND d.event_id = p_event)
    ), superseded AS (
        UPDATE deliveries d SET status = 'superseded', updated_at = now()
        FROM m
        WHERE seq IS NOT NULL AND m.delivery_order = 'latest' AND d.subscription_id = m.subscription_id
          AND d.vendor = p_vendor AND d.exam_key = p_exam AND d.exam_seq < seq AND d.exam_version < ver
          AND d.status IN ('waiting', 'pending', 'held') AND d.claimed_at IS NULL
        RETURNING d.id, d.attempts
    ), noted AS (
        INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, latency_ms, error, outcome)
        SELECT s.id, s.attempts + 1, now(), 0, 'superseded by a newer event of the exam (' || p_event || ')',
               'superseded'
        FROM superseded s
    ), decided AS (
        SELECT m.subscription_id, CASE
            WHEN seq IS NULL THEN 'pending'
            -- A later event of the exam was handed out already (this one would arrive after it), or,
            -- when only the latest is wanted, one of a newer version is there at all.
            WHEN EXISTS (SELECT 1 FROM deliveries l
                         WHERE l.subscription_id = m.subscription_id AND l.vendor = p_vendor
                           AND l.exam_key = p_exam AND l.exam_seq > seq
                           AND (l.status <> 'waiting' OR (m.delivery_order = 'latest' AND l.exam_version > ver)))
                THEN 'superseded'
            WHEN m.delivery_order = 'latest' AND EXISTS (
                    SELECT 1 FROM deliveries b
                    WHERE b.subscription_id = m.subscription_id AND b.vendor = p_vendor
                      AND b.exam_key = p_exam AND b.exam_seq < seq
                      AND b.status IN ('waiting', 'pending', 'held') AND b.id NOT IN (SELECT id FROM superseded))
                THEN 'waiting'
            WHEN m.delivery_order = 'all' AND delivery_blocked(m.subscription_id, p_vendor, p_exam, seq, 'all')
                THEN 'waiting'
            ELSE 'pending' END AS status
        FROM m
    ), inserted AS (
        INSERT INTO deliveries (id, subscription_id, event_id, event_type, status, vendor, exam_key, exam_seq,
                                exam_version)
        SELECT gen_random_uuid(), d.subscription_id, p_event, p_type, d.status, p_vendor, p_exam, seq, ver
        FROM decided d
        ON CONFLICT ON CONSTRAINT deliveries_subscription_id_event_id_key DO NOTHING
        RETURNING deliveries.id, deliveries.subscription_id, deliveries.status
    ), late AS (
        INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, latency_ms, error, outcome)
        SELECT i.id, 1, now(), 0, 'superseded: a later event of the exam was handed out before it', 'superseded'
        FROM inserted i WHERE i.status = 'superseded'
    )
    SELECT i.id, i.subscription_id, p_event, 0 FROM inserted i WHERE i.status = 'pending'
    UNION ALL
    SELECT d.id, d.subscription_id, d.event_id, d.attempts FROM deliveries d
    WHERE recovering AND d.attempts = 0 AND d.status = 'pending' AND d.claimed_at IS NULL
      -- This event's, and what its earlier fan-out released of the exam: their tasks may be lost.
      AND (d.event_id = p_event
           OR (seq IS NOT NULL AND d.vendor = p_vendor AND d.exam_key = p_exam AND d.exam_seq > seq));
    IF seq IS NOT NULL THEN
        UPDATE events e SET fanned_out_at = now() WHERE e.id = p_event AND e.fanned_out_at IS NULL;
        RETURN QUERY SELECT * FROM delivery_release(p_vendor, p_exam, NULL);
    END IF;
END $$;

-- How claimed deliveries end their turn (each a row of the arrays): the delivery's new state and,
-- for an attempt made, its row in the log. A retry of a delivery that a newer event of its exam waits
-- behind, for a subscription that wants only the latest, is superseded instead, with a note. Then the
-- subscriptions to disable (a 410), and what the settlements released. Rows: ('settled', delivery,
-- its attempts and status), ('disabled', subscription), ('released', delivery, subscription, event,
-- attempts, 'vendor/exam').
CREATE FUNCTION deliveries_settle(ids uuid[], statuses text[], attempted_at timestamptz[], status_codes integer[],
                                  latencies double precision[], errors text[], outcomes text[],
                                  next_attempts timestamptz[], made boolean[], exams text[],
                                  disable uuid[], disable_reasons text[])
RETURNS TABLE (kind text, delivery_id uuid, subscription_id uuid, event_id uuid, attempts integer, status text,
               exam text)
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        -- Every statement after the lock must see what was committed before it was granted.
        RAISE EXCEPTION 'resultbus delivery order needs READ COMMITTED, not %', current_setting('transaction_isolation');
    END IF;
    PERFORM delivery_order_lock(exams);
    RETURN QUERY
    WITH a AS (
        SELECT * FROM unnest(ids, statuses, attempted_at, status_codes, latencies, errors, outcomes,
                             next_attempts, made)
            AS a(id, status, attempted_at, status_code, latency_ms, error, outcome, next_attempt_at, made)
    ), decided AS (
        SELECT a.*, CASE
            WHEN a.status = 'pending' AND t.delivery_order = 'latest' AND EXISTS (
                SELECT 1 FROM deliveries l WHERE l.subscription_id = d.subscription_id AND l.vendor = d.vendor
                  AND l.exam_key = d.exam_key AND l.exam_seq > d.exam_seq AND l.exam_version > d.exam_version
                  AND l.status = 'waiting')
            THEN 'superseded' ELSE a.status END AS final
        FROM a JOIN deliveries d ON d.id = a.id JOIN subscriptions t ON t.id = d.subscription_id
    ), d AS (
        UPDATE deliveries SET attempts = deliveries.attempts + x.made::int, status = x.final,
                              last_status = CASE WHEN x.made THEN x.status_code ELSE deliveries.last_status END,
                              last_error = CASE WHEN x.made THEN x.error ELSE deliveries.last_error END,
                              next_attempt_at = CASE WHEN x.final = 'pending' THEN x.next_attempt_at END,
                              claimed_at = NULL, claimed_by = NULL, updated_at = now()
        FROM decided x WHERE deliveries.id = x.id
        RETURNING deliveries.id, deliveries.attempts, deliveries.status, x.made, x.attempted_at, x.status_code,
                  x.latency_ms, x.error, x.outcome, x.next_attempt_at
    ), logged AS (
        INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, status_code, latency_ms, error,
                                       outcome, next_attempt_at)
        SELECT d.id, d.attempts, d.attempted_at, d.status_code, d.latency_ms, d.error, d.outcome,
               d.next_attempt_at
        FROM d WHERE d.made
    ), noted AS (
        INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, latency_ms, error, outcome)
        SELECT d.id, d.attempts + 1, now(), 0, 'superseded by a newer event of the exam', 'superseded'
        FROM d WHERE d.status = 'superseded'
    )
    SELECT 'settled', d.id, NULL::uuid, NULL::uuid, d.attempts, d.status, NULL FROM d;
    RETURN QUERY
    UPDATE subscriptions s SET status = 'disabled', status_reason = r.reason, status_changed_at = now(),
                               updated_at = now()
    FROM unnest(disable, disable_reasons) AS r(id, reason)
    WHERE s.id = r.id AND s.status = 'active'
    RETURNING 'disabled', NULL::uuid, s.id, NULL::uuid, NULL::integer, NULL::text, NULL::text;
    RETURN QUERY
    SELECT 'released', r.delivery_id, r.subscription_id, r.event_id, r.attempts, NULL::text,
           o.vendor || '/' || o.exam_key
    FROM (SELECT DISTINCT d.vendor, d.exam_key FROM deliveries d
          WHERE d.id = ANY (ids) AND d.exam_seq IS NOT NULL) o,
         LATERAL delivery_release(o.vendor, o.exam_key,
                                  ARRAY(SELECT d.subscription_id FROM deliveries d
                                        WHERE d.id = ANY (ids) AND d.vendor = o.vendor
                                          AND d.exam_key = o.exam_key)) r;
END $$;

-- Sending deliveries again (an operator's replay, admin/replay.py), in their place in the exam's order:
-- each becomes pending, or waiting while another delivery of its exam is unsettled for its subscription
-- (one being posted, say: the replay goes after it). One being attempted right now is left alone (not
-- returned). Rows: the deliveries requeued, with their new status.
CREATE FUNCTION deliveries_requeue(ids uuid[])
RETURNS TABLE (delivery_id uuid, subscription_id uuid, event_id uuid, attempts integer, status text)
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        -- Every statement after the lock must see what was committed before it was granted.
        RAISE EXCEPTION 'resultbus delivery order needs READ COMMITTED, not %', current_setting('transaction_isolation');
    END IF;
    PERFORM delivery_order_lock(ARRAY(
        SELECT DISTINCT d.vendor || '/' || d.exam_key FROM deliveries d
        WHERE d.id = ANY (ids) AND d.exam_seq IS NOT NULL ORDER BY 1));
    RETURN QUERY
    UPDATE deliveries x SET
        status = CASE WHEN x.exam_seq IS NOT NULL AND (
                        EXISTS (SELECT 1 FROM deliveries b
                                WHERE b.vendor = x.vendor AND b.exam_key = x.exam_key
                                  AND b.subscription_id = x.subscription_id AND b.exam_seq IS NOT NULL
                                  AND b.id <> x.id AND b.status IN ('waiting', 'pending', 'held'))
                        OR delivery_blocked(x.subscription_id, x.vendor, x.exam_key, x.exam_seq, 'all'))
                      THEN 'waiting' ELSE 'pending' END,
        next_attempt_at = NULL, updated_at = now()
    WHERE x.id = ANY (ids) AND x.claimed_at IS NULL
    RETURNING x.id, x.subscription_id, x.event_id, x.attempts, x.status;
END $$;
