-- The helpers of the exam order (013) as PL/pgSQL: PostgreSQL plans a statement of an SQL-language
-- function afresh at every call, and these run once per exam of every fan-out and settlement (the
-- release) or once per matched subscription (the blocked check). PL/pgSQL keeps each plan for the
-- session. Same signatures, same rules; see 013 for what each decides.

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
