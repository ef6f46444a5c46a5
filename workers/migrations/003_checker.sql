-- The dead-endpoint checker claims due endpoints in next_check_at order every poll: without this
-- index that is a scan of every endpoint, once a minute per checker.
CREATE INDEX endpoints_next_check ON endpoints (next_check_at);
