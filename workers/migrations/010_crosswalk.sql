-- Gradebook destinations (issue 21): the crosswalk from vendor candidates to the institution's
-- students, the results held until a candidate can be mapped, and a subscription's destination kind.
-- See docs/destinations.md.

-- One row per vendor candidate: who the institution says the candidate is. `candidate` is the
-- vendor's id of the candidate (gradebook/crosswalk.py:candidate_key: iTEP's TestID, the others' user
-- id); `student` the student's sourcedId in the institution's SIS. `override` wins over every other
-- source (a registrar's correction of an order's trStudent_Number, say).
CREATE TABLE crosswalk (
    vendor       text        NOT NULL,
    candidate    text        NOT NULL,
    student      text        NOT NULL CHECK (student <> '' AND length(student) <= 255),
    override     boolean     NOT NULL DEFAULT false,
    source       text        NOT NULL CHECK (source IN ('api', 'csv')),  -- how the row was last set
    note         text,
    created_by   text        NOT NULL,  -- a person, or a ticket: the admin API has one token
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text        NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vendor, candidate)
);
CREATE INDEX crosswalk_by_student ON crosswalk (student);

-- Every change of a mapping, kept: which student a candidate was before a correction is what an
-- institution needs to fix a grade written under the old mapping.
CREATE TABLE crosswalk_changes (
    seq          bigserial   PRIMARY KEY,
    vendor       text        NOT NULL,
    candidate    text        NOT NULL,
    before       text,                    -- null: the mapping is new
    after        text,                    -- null: the mapping was deleted
    override     boolean     NOT NULL DEFAULT false,
    source       text        NOT NULL,    -- api | csv
    changed_by   text        NOT NULL,
    changed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX crosswalk_changes_by_candidate ON crosswalk_changes (vendor, candidate, seq);

-- A result a gradebook subscription could not map to a student yet: held, never dropped. The
-- delivery worker holds (gradebook/crosswalk_db.py:hold); a mapping arriving through the admin API
-- releases the candidate's holds in its own transaction (`released_at`), and the delivery worker
-- takes released holds and sends them (`resumed_at`): a release is never lost while a worker is down.
CREATE TABLE gradebook_holds (
    subscription_id  uuid        NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    event_id         uuid        NOT NULL,
    delivery_id      uuid,
    vendor           text        NOT NULL,
    exam_key         text,
    candidate        text,                  -- crosswalk key; null: the event names no candidate
    reason           text        NOT NULL,
    held_at          timestamptz NOT NULL DEFAULT now(),
    released_at      timestamptz,
    released_by      text,                  -- 'crosswalk:<vendor>/<candidate>' or what else released it
    resumed_at       timestamptz,
    PRIMARY KEY (subscription_id, event_id)
);
CREATE INDEX gradebook_holds_waiting ON gradebook_holds (vendor, candidate) WHERE released_at IS NULL;
CREATE INDEX gradebook_holds_released ON gradebook_holds (released_at)
    WHERE released_at IS NOT NULL AND resumed_at IS NULL;

-- A subscription's destination: a Standard Webhooks POST (as before), a OneRoster 1.2 gradebook or a
-- Caliper 1.2 endpoint. `destination` is the configuration (gradebook/config.py), secrets by name only.
ALTER TABLE subscriptions
    ADD COLUMN destination_kind text NOT NULL DEFAULT 'webhook'
        CHECK (destination_kind IN ('webhook', 'oneroster', 'caliper')),
    ADD COLUMN destination jsonb,
    ADD CONSTRAINT subscriptions_destination_config
        CHECK ((destination_kind = 'webhook') = (destination IS NULL));
