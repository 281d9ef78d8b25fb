-- The schema of the first release (35d0a89): rules without conditions, the
-- changelog without texts, the revision.
CREATE TABLE feature_rules (
    flag     TEXT    NOT NULL,
    scope    TEXT    NOT NULL,
    priority INTEGER NOT NULL,
    value    TEXT    NOT NULL,
    PRIMARY KEY (flag, scope),
    UNIQUE (flag, priority)
);

CREATE INDEX feature_rules_scope_idx
    ON feature_rules (scope, flag, priority DESC);

CREATE TABLE feature_changelog (
    id         BIGSERIAL PRIMARY KEY,
    changed_at TIMESTAMPTZ NOT NULL,
    actor      TEXT   NOT NULL,
    comment    TEXT   NOT NULL,
    diff       TEXT   NOT NULL,
    revision   BIGINT NOT NULL
);

CREATE UNIQUE INDEX feature_changelog_revision_idx
    ON feature_changelog (revision);

CREATE TABLE feature_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision BIGINT  NOT NULL
);

INSERT INTO feature_revision (id, revision) VALUES (1, 0);
