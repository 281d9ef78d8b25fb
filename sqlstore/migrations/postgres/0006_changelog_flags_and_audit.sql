-- Each changelog entry records the flags it touched, so the changelog can
-- be read a flag at a time; the entries written before get theirs from
-- their diffs (a step in Go, after this file). Key creations and
-- revocations are recorded in an audit log, apart from the rules'
-- revisions. Only tables are added, so binaries of version 5 keep running
-- on this schema during a rolling upgrade: the entries they write are
-- filed by flag at the next write of a newer binary (fileUnfiled), and
-- the keys they create or revoke meanwhile are not in the audit log.
-- compatible-from: 5
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
