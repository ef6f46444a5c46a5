-- The fan-out of several events in one call (one statement planned, one commit, for the events a
-- worker has in hand), each event as deliveries_create of 013 decided it alone. The caller never puts
-- two events of one exam in a call: within one statement an event would not see the deliveries of
-- the other. The "blocked" rule of delivery_blocked is written out in the statement, so that it is
-- planned with it, once, rather than once per matched subscription.
DROP FUNCTION deliveries_create(uuid, text, text, text, text, boolean);

CREATE FUNCTION deliveries_create(p_events uuid[], p_vendors text[], p_sources text[], p_types text[],
                                  p_exams text[], p_recovering boolean[])
RETURNS TABLE (for_event uuid, delivery_id uuid, subscription_id uuid, event_id uuid, attempts integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    seqs bigint[];
    vers integer[];
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
    RETURN QUERY
    SELECT f.id, r.delivery_id, r.subscription_id, r.event_id, r.attempts
    FROM unnest(p_events, p_vendors, p_exams, seqs) AS f(id, vendor, exam, seq),
         LATERAL delivery_release(f.vendor, f.exam, NULL) r
    WHERE f.seq IS NOT NULL;
END $$;

ALTER FUNCTION deliveries_create(uuid[], text[], text[], text[], text[], boolean[])
    SET plan_cache_mode = force_custom_plan;
