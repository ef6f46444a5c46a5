-- The operator console's look-ups (admin/console/queries.py), measured by `python -m bench console`
-- with 100,000 events (figures in docs/console.md). Each of these replaces a scan of every event or
-- webhook, which grows with what is kept; look-ups that measured fast without an index of their own
-- (an exam's deliveries, the rejected list) got none, to keep the router's inserts lean.

-- Find an exam by the candidate's email, their external id (iTEP OID) or the vendor's test id. The
-- expressions are exactly those of the queries: change one, change both.
CREATE INDEX IF NOT EXISTS events_candidate_email ON events (lower(payload->'candidate'->>'email'));
CREATE INDEX IF NOT EXISTS events_candidate_external_id ON events ((payload->'candidate'->>'external_id'));
CREATE INDEX IF NOT EXISTS events_test_id ON events ((payload->'exam'->>'test_id'));

-- The overview counts the last day's webhooks by arrival (appended in time order: a cheap index).
CREATE INDEX IF NOT EXISTS raw_webhooks_received ON raw_webhooks (received_at);
