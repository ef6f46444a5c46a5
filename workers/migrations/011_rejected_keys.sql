-- Finding rejected webhooks by what their bodies say (the console's "Find an exam", its rejected
-- list, the admin API's /v1/rejected-webhooks, replays of a selection). A rejected webhook has no
-- event to search, only the vendor's bytes: this function reads from them what the vendor's
-- normalizer would have made the exam's key, test id, the candidate's external id and email, as
-- `kind:value` texts (`key:3279B035APR`, `test_id:...`, `external_id:cand-0042`, `email:` lower
-- case), and a GIN index over it, on rejected rows only, makes each look-up an index search rather
-- than a read of every rejected body. Measured by `python -m bench console` (docs/console.md).
--
-- The queries use exactly this expression, `rejected_webhook_keys(vendor, content_type, body)`
-- (common/rejected.py: KEYS): change one, change both. It never raises (a body it cannot read
-- names nothing), so no insert of the router can fail because of it; it only reads built-ins (its
-- search_path is pg_catalog), as an index expression must.
CREATE OR REPLACE FUNCTION rejected_webhook_keys(vendor text, content_type text, body bytea)
RETURNS text[]
-- Restricted, not safe: its exception blocks are subtransactions, which a parallel worker cannot
-- start (a parallel scan calling it would fail the query); the leader alone evaluates it.
LANGUAGE plpgsql IMMUTABLE PARALLEL RESTRICTED
-- Reading a body is dear: said so, the planner searches the index rather than read each row's body.
COST 10000
SET search_path = pg_catalog
AS $fn$
DECLARE
    media text := lower(btrim(split_part(coalesce(content_type, ''), ';', 1)));
    whole text;
    data text;
    doc jsonb;
    boundary text;
    part text;
    head text;
    cut int;
    context text;
    associated text;
    key text;
    test_id text;
    external_id text;
    email text;
    found text[] := '{}';
BEGIN
    IF body IS NULL OR length(body) = 0 THEN
        RETURN found;
    END IF;
    BEGIN
        whole := convert_from(body, 'UTF8');
        IF media = 'application/x-www-form-urlencoded' THEN
            -- iTEP: the JSON is in the form field `data` (the first one, percent-decoded).
            SELECT substr(f, 6) INTO data FROM unnest(string_to_array(whole, '&')) AS f
            WHERE f LIKE 'data=%' LIMIT 1;
            IF data IS NULL THEN
                RETURN found;
            END IF;
            SELECT convert_from(string_agg(
                       CASE WHEN n = 1 THEN convert_to(piece, 'UTF8')
                            ELSE decode(substr(piece, 1, 2), 'hex') || convert_to(substr(piece, 3), 'UTF8')
                       END, ''::bytea ORDER BY n), 'UTF8')
            INTO data
            FROM unnest(string_to_array(replace(data, '+', ' '), '%')) WITH ORDINALITY AS t(piece, n);
        ELSIF media = 'multipart/form-data' THEN
            -- iTEP again: the part named `data` (RFC 7578), as vendors/itep.py reads it.
            boundary := substring(content_type FROM '(?i);\s*boundary="([^"]+)"');
            IF boundary IS NULL THEN
                boundary := substring(content_type FROM '(?i);\s*boundary=([^;[:space:]]+)');
            END IF;
            IF boundary IS NULL THEN
                RETURN found;
            END IF;
            FOREACH part IN ARRAY string_to_array(whole, '--' || boundary) LOOP
                cut := strpos(part, E'\r\n\r\n');
                IF cut > 0 THEN
                    head := substr(part, 1, cut - 1);
                    part := substr(part, cut + 4);
                ELSE
                    cut := strpos(part, E'\n\n');
                    CONTINUE WHEN cut = 0;
                    head := substr(part, 1, cut - 1);
                    part := substr(part, cut + 2);
                END IF;
                IF head ~* 'content-disposition:[^\n]*;\s*name=("data"|data)(;|\s|$)' THEN
                    data := regexp_replace(part, E'\r?\n$', '');
                    EXIT;
                END IF;
            END LOOP;
            IF data IS NULL THEN
                RETURN found;
            END IF;
        ELSE
            data := whole;
        END IF;
        doc := data::jsonb;
    EXCEPTION WHEN OTHERS THEN
        RETURN found;  -- not UTF-8, not JSON, a bad escape: the body names nothing we can read
    END;
    IF jsonb_typeof(doc) IS DISTINCT FROM 'object' THEN
        RETURN found;
    END IF;

    -- As each vendor's normalizer makes them (vendors/<vendor>.py).
    CASE vendor
        WHEN 'itep' THEN
            key := doc->>'TestID';
            test_id := key;
            external_id := doc->>'OID';
        WHEN 'inspera' THEN
            IF doc->>'contextObjectType' = 'ASSESSMENT_RUN' AND doc->>'contextObjectId' IS NOT NULL THEN
                context := 'ASSESSMENT_RUN:' || (doc->>'contextObjectId');
                IF doc->>'associatedObjectType' IN ('CANDIDATE', 'USER_ASSESSMENT')
                   AND doc->>'associatedObjectId' IS NOT NULL THEN
                    associated := (doc->>'associatedObjectType') || ':' || (doc->>'associatedObjectId');
                    key := context || '/' || associated;
                ELSE
                    key := context;
                END IF;
                test_id := doc->>'contextObjectId';
            END IF;
        WHEN 'synap' THEN
            IF btrim(doc->'attempt'->>'id') <> '' THEN
                key := 'attempt:' || (doc->'attempt'->>'id');
            ELSIF btrim(doc->'exam'->>'id') <> '' AND btrim(doc->'user'->>'id') <> '' THEN
                key := 'exam:' || (doc->'exam'->>'id') || '/user:' || (doc->'user'->>'id');
            END IF;
            test_id := doc->'test'->>'id';
            email := doc->'user'->>'email';
        WHEN 'testpress' THEN
            IF doc->>'attempt_id' IS NOT NULL THEN
                key := 'attempt:' || (doc->>'attempt_id');
            END IF;
            test_id := doc->'exam'->>'id';
            external_id := doc->>'institute_attempt_id';
            email := doc->>'email';
        ELSE
            NULL;
    END CASE;
    IF btrim(key) <> '' THEN
        found := found || ('key:' || key);
    END IF;
    IF btrim(test_id) <> '' THEN
        found := found || ('test_id:' || btrim(test_id));
    END IF;
    IF btrim(external_id) <> '' THEN
        found := found || ('external_id:' || btrim(external_id));
    END IF;
    IF btrim(email) <> '' THEN
        found := found || ('email:' || lower(btrim(email)));
    END IF;
    RETURN found;
EXCEPTION WHEN OTHERS THEN
    RETURN '{}';
END;
$fn$;

CREATE INDEX IF NOT EXISTS raw_webhooks_rejected_keys ON raw_webhooks
    USING gin (rejected_webhook_keys(vendor, content_type, body)) WHERE outcome = 'rejected';

-- The rejected list, newest first by arrival, a page at a time (the console, the admin API and
-- `inspect rejected` all list them so): the rejected rows alone, in that order.
CREATE INDEX IF NOT EXISTS raw_webhooks_rejected_arrival ON raw_webhooks (received_at, id)
    WHERE outcome = 'rejected';
