-- Each changelog entry records the flags it touched, so the changelog can
-- be read a flag at a time; the entries written before get theirs from
-- their diffs (a step in Go, after this file). Key creations and
-- revocations are recorded in an audit log, apart from the rules'
-- revisions. Binaries of version 5 would write entries and key events
-- without recording them here, so they do not run on this schema.
CREATE TABLE feature_changelog_flags (
    entry_id BIGINT NOT NULL REFERENCES feature_changelog (id),
    flag     TEXT   NOT NULL,
    PRIMARY KEY (entry_id, flag)
);

CREATE INDEX feature_changelog_flags_flag_idx
    ON feature_changelog_flags (flag, entry_id);

CREATE TABLE feature_audit (
    id       BIGSERIAL PRIMARY KEY,
    at       TIMESTAMPTZ NOT NULL,
    actor    TEXT   NOT NULL,
    action   TEXT   NOT NULL,
    key_id   BIGINT NOT NULL,
    key_name TEXT   NOT NULL,
    scope    TEXT   NOT NULL
);
