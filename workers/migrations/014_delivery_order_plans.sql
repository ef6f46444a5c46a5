-- The helpers of the exam order (013) as PL/pgSQL: PostgreSQL parses, analyses and plans the body of
-- an SQL-language function that it cannot inline anew for every statement that calls it, and these
-- run once per exam of every fan-out and settlement (the release) or once per matched subscription
-- (the blocked check). PL/pgSQL parses each once per session. Same signatures, same rules; see 013
-- for what each decides.

CREATE OR REPLACE FUNCTION delivery_order_lock(exams text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(current_schema() || ' delivery order'), hashtext(k))
    FROM unnest(exams) AS k;  -- the caller sorts them: one order, no deadlock
END $$;

CREATE OR REPLACE FUNCTION delivery_blocked(x_subscription uuid, x_vendor text, x_exam text, x_seq bigint,
                                            x_order text)
RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM deliveries b
                   WHERE b.subscription_id = x_subscription AND b.vendor = x_vendor AND b.exam_key = x_exam
                     AND b.exam_seq < x_seq AND b.status IN ('waiting', 'pending', 'held'))
        OR (x_order = 'all' AND EXISTS (SELECT 1 FROM events p
                   WHERE p.vendor = x_vendor AND p.exam_key = x_exam AND p.exam_seq < x_seq
                     AND p.fanned_out_at IS NULL));
END $$;

CREATE OR REPLACE FUNCTION delivery_release(r_vendor text, r_exam text, r_subscriptions uuid[])
RETURNS TABLE (delivery_id uuid, subscription_id uuid, event_id uuid, attempts integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    UPDATE deliveries x SET status = 'pending', updated_at = now()
    FROM subscriptions s
    WHERE x.vendor = r_vendor AND x.exam_key = r_exam AND x.exam_seq IS NOT NULL AND x.status = 'waiting'
      AND (r_subscriptions IS NULL OR x.subscription_id = ANY (r_subscriptions))
      AND s.id = x.subscription_id
      AND NOT delivery_blocked(x.subscription_id, x.vendor, x.exam_key, x.exam_seq, s.delivery_order)
    RETURNING x.id, x.subscription_id, x.event_id, x.attempts;
END $$;

-- Planned at every call with the values it is called with. A plan kept for the session is made once,
-- from the table as it was then: a worker that started on a young table (a new deployment, a test,
-- a bench) kept finding an exam's deliveries through every delivery of the subscription
-- (`deliveries_by_subscription`: the cheapest-looking index of a near-empty table) until the next
-- ANALYZE, each fan-out slower than the one before.
ALTER FUNCTION deliveries_create(uuid, text, text, text, text, boolean) SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION deliveries_settle(uuid[], text[], timestamptz[], integer[], double precision[], text[], text[],
                                 timestamptz[], boolean[], text[], uuid[], text[])
    SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION deliveries_requeue(uuid[]) SET plan_cache_mode = force_custom_plan;
