-- The delivery worker's decisions in groups: the fan-out of several events in one call (the events a
-- worker has in hand: one statement planned, one commit), and what a settlement or a fan-out released,
-- for all its exams in one statement. Each event and each exam is decided as 013 decided it alone;
-- the caller never puts two events of one exam in a fan-out (within one statement an event would not
-- see the deliveries of the other). The "blocked" rule of delivery_blocked (013) is written out in the
-- statements, to be planned with them, once, rather than once per matched subscription or exam (the
-- callers plan at every call, 014).

CREATE FUNCTION deliveries_release(r_vendors text[], r_exams text[], r_subscriptions uuid[])
RETURNS TABLE (delivery_id uuid, subscription_id uuid, event_id uuid, attempts integer, exam text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH o AS (
        SELECT DISTINCT * FROM unnest(r_vendors, r_exams, r_subscriptions) AS o(vendor, exam, subscription)
    )
    UPDATE deliveries x SET status = 'pending', updated_at = now()
    FROM o, subscriptions s
    WHERE x.vendor = o.vendor AND x.exam_key = o.exam AND x.exam_seq IS NOT NULL AND x.status = 'waiting'
      AND (o.subscription IS NULL OR x.subscription_id = o.subscription)
      AND s.id = x.subscription_id
      AND NOT EXISTS (SELECT 1 FROM deliveries b
                      WHERE b.subscription_id = x.subscription_id AND b.vendor = x.vendor
                        AND b.exam_key = x.exam_key AND b.exam_seq < x.exam_seq
                        AND b.status IN ('waiting', 'pending', 'held'))
      AND NOT (s.delivery_order = 'all' AND EXISTS (SELECT 1 FROM events p
                      WHERE p.vendor = x.vendor AND p.exam_key = x.exam_key AND p.exam_seq < x.exam_seq
                        AND p.fanned_out_at IS NULL))
    RETURNING x.id, x.subscription_id, x.event_id, x.attempts, x.vendor || '/' || x.exam_key;
END $$;

-- The settlement of 013, releasing through deliveries_release.
CREATE OR REPLACE FUNCTION deliveries_settle(ids uuid[], statuses text[], attempted_at timestamptz[], status_codes integer[],
                                  latencies double precision[], errors text[], outcomes text[],
                                  next_attempts timestamptz[], made boolean[], exams text[],
                                  disable uuid[], disable_reasons text[])
RETURNS TABLE (kind text, delivery_id uuid, subscription_id uuid, event_id uuid, attempts integer, status text,
               exam text)
LANGUAGE plpgsql AS $$
DECLARE
    vendors text[];
    keys text[];
    subs uuid[];
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
    SELECT array_agg(d.vendor), array_agg(d.exam_key), array_agg(d.subscription_id) INTO vendors, keys, subs
    FROM deliveries d WHERE d.id = ANY (ids) AND d.exam_seq IS NOT NULL;
    RETURN QUERY
    SELECT 'released', r.delivery_id, r.subscription_id, r.event_id, r.attempts, NULL::text, r.exam
    FROM deliveries_release(vendors, keys, subs) r;
END $$;

DROP FUNCTION deliveries_create(uuid, text, text, text, text, boolean);

CREATE FUNCTION deliveries_create(p_events uuid[], p_vendors text[], p_sources text[], p_types text[],
                                  p_exams text[], p_recovering boolean[])
RETURNS TABLE (for_event uuid, delivery_id uuid, subscription_id uuid, event_id uuid, attempts integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    seqs bigint[];
    vers integer[];
    ordered_vendors text[];  -- of the events with a place in their exam's order
    ordered_exams text[];
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        -- Every statement after the lock must see what was committed before it was granted.
        RAISE EXCEPTION 'resultbus delivery order needs READ COMMITTED, not %', current_setting('transaction_isolation');
    END IF;
    -- Each event's place in its exam's order (given by the router: fixed before the lock is taken).
    SELECT array_agg(e.exam_seq ORDER BY i.n), array_agg(e.exam_version ORDER BY i.n) INTO seqs, vers
    FROM unnest(p_events, p_exams) WITH ORDINALITY AS i(id, exam, n)
    LEFT JOIN events e ON e.id = i.id AND e.exam_key = i.exam;
    PERFORM delivery_order_lock(ARRAY(
        SELECT f.vendor || '/' || f.exam FROM unnest(p_vendors, p_exams, seqs) AS f(vendor, exam, seq)
        WHERE f.seq IS NOT NULL ORDER BY 1));
    RETURN QUERY
    WITH f AS (
        SELECT * FROM unnest(p_events, p_vendors, p_sources, p_types, p_exams, p_recovering, seqs, vers)
            AS f(id, vendor, source, type, exam, recovering, seq, ver)
    ), m AS (
        SELECT f.*, s.id AS subscription_id, s.delivery_order
        FROM f JOIN subscriptions s ON s.status = 'active'
          AND (cardinality(s.vendors) = 0 OR f.vendor = ANY (s.vendors))
          AND (cardinality(s.sources) = 0 OR f.source = ANY (s.sources))
          AND (cardinality(s.event_types) = 0 OR EXISTS (
                SELECT 1 FROM unnest(s.event_types) AS t(t)
                WHERE t.t = f.type OR (right(t.t, 1) = '*' AND starts_with(f.type, left(t.t, -1)))))
          AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.subscription_id = s.id AND d.event_id = f.id)
    ), superseded AS (
        UPDATE deliveries d SET status = 'superseded', updated_at = now()
        FROM m
        WHERE m.seq IS NOT NULL AND m.delivery_order = 'latest' AND d.subscription_id = m.subscription_id
          AND d.vendor = m.vendor AND d.exam_key = m.exam AND d.exam_seq < m.seq AND d.exam_version < m.ver
          AND d.status IN ('waiting', 'pending', 'held') AND d.claimed_at IS NULL
        RETURNING d.id, d.attempts, m.id AS by_event
    ), noted AS (
        INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, latency_ms, error, outcome)
        SELECT s.id, s.attempts + 1, now(), 0, 'superseded by a newer event of the exam (' || s.by_event || ')',
               'superseded'
        FROM superseded s
    ), decided AS (
        SELECT m.*, CASE
            WHEN m.seq IS NULL THEN 'pending'
            -- A later event of the exam was handed out already (this one would arrive after it), or,
            -- when only the latest is wanted, one of a newer version is there at all.
            WHEN EXISTS (SELECT 1 FROM deliveries l
                         WHERE l.subscription_id = m.subscription_id AND l.vendor = m.vendor
                           AND l.exam_key = m.exam AND l.exam_seq > m.seq
                           AND (l.status <> 'waiting' OR (m.delivery_order = 'latest' AND l.exam_version > m.ver)))
                THEN 'superseded'
            WHEN m.delivery_order = 'latest' AND EXISTS (
                    SELECT 1 FROM deliveries b
                    WHERE b.subscription_id = m.subscription_id AND b.vendor = m.vendor
                      AND b.exam_key = m.exam AND b.exam_seq < m.seq
                      AND b.status IN ('waiting', 'pending', 'held') AND b.id NOT IN (SELECT id FROM superseded))
                THEN 'waiting'
            -- delivery_blocked(m.subscription_id, m.vendor, m.exam, m.seq, 'all'):
            WHEN m.delivery_order = 'all' AND (
                    EXISTS (SELECT 1 FROM deliveries b
                            WHERE b.subscription_id = m.subscription_id AND b.vendor = m.vendor
                              AND b.exam_key = m.exam AND b.exam_seq < m.seq
                              AND b.status IN ('waiting', 'pending', 'held'))
                    OR EXISTS (SELECT 1 FROM events p
                               WHERE p.vendor = m.vendor AND p.exam_key = m.exam AND p.exam_seq < m.seq
                                 AND p.fanned_out_at IS NULL))
                THEN 'waiting'
            ELSE 'pending' END AS status
        FROM m
    ), inserted AS (
        INSERT INTO deliveries (id, subscription_id, event_id, event_type, status, vendor, exam_key, exam_seq,
                                exam_version)
        SELECT gen_random_uuid(), d.subscription_id, d.id, d.type, d.status, d.vendor, d.exam, d.seq, d.ver
        FROM decided d
        ON CONFLICT ON CONSTRAINT deliveries_subscription_id_event_id_key DO NOTHING
        RETURNING deliveries.id, deliveries.subscription_id, deliveries.event_id, deliveries.status
    ), late AS (
        INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, latency_ms, error, outcome)
        SELECT i.id, 1, now(), 0, 'superseded: a later event of the exam was handed out before it', 'superseded'
        FROM inserted i WHERE i.status = 'superseded'
    )
    SELECT i.event_id, i.id, i.subscription_id, i.event_id, 0 FROM inserted i WHERE i.status = 'pending'
    UNION ALL
    SELECT f.id, d.id, d.subscription_id, d.event_id, d.attempts
    FROM f JOIN deliveries d
      -- This event's, and what its earlier fan-out released of the exam: their tasks may be lost.
      ON d.event_id = f.id OR (f.seq IS NOT NULL AND d.vendor = f.vendor AND d.exam_key = f.exam AND d.exam_seq > f.seq)
    WHERE f.recovering AND d.attempts = 0 AND d.status = 'pending' AND d.claimed_at IS NULL;
    UPDATE events e SET fanned_out_at = now()
    WHERE e.id = ANY (ARRAY(SELECT f.id FROM unnest(p_events, seqs) AS f(id, seq) WHERE f.seq IS NOT NULL))
      AND e.fanned_out_at IS NULL;
    SELECT array_agg(f.vendor), array_agg(f.exam) INTO ordered_vendors, ordered_exams
    FROM unnest(p_vendors, p_exams, seqs) AS f(vendor, exam, seq) WHERE f.seq IS NOT NULL;
    RETURN QUERY
    SELECT f.id, r.delivery_id, r.subscription_id, r.event_id, r.attempts
    FROM unnest(p_events, p_vendors, p_exams, seqs) AS f(id, vendor, exam, seq)
    JOIN deliveries_release(ordered_vendors, ordered_exams, NULL) r ON r.exam = f.vendor || '/' || f.exam
    WHERE f.seq IS NOT NULL;
END $$;

ALTER FUNCTION deliveries_create(uuid[], text[], text[], text[], text[], boolean[])
    SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION deliveries_release(text[], text[], uuid[]) SET plan_cache_mode = force_custom_plan;
DROP FUNCTION delivery_release(text, text, uuid[]);
-- CREATE OR REPLACE dropped 014's setting of the settlement.
ALTER FUNCTION deliveries_settle(uuid[], text[], timestamptz[], integer[], double precision[], text[], text[],
                                 timestamptz[], boolean[], text[], uuid[], text[])
    SET plan_cache_mode = force_custom_plan;
