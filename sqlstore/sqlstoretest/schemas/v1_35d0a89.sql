-- scopeflags canonical schema (PostgreSQL dialect).
-- Applied on every open; every statement is idempotent.
-- SQLite gets the small rewrites listed in schema.go (sqliteRewrites), kept beside this file.

-- One row a rule: (flag, scope, priority, value). A flag has at most one rule
-- per scope, and priorities are unique within a flag; the highest wins.
CREATE TABLE IF NOT EXISTS feature_rules (
    flag     TEXT    NOT NULL,
    scope    TEXT    NOT NULL,
    priority INTEGER NOT NULL,
    value    TEXT    NOT NULL,
    PRIMARY KEY (flag, scope),
    UNIQUE (flag, priority)
);

-- Serves the prioritized query: rows for a handful of active scopes, already
-- in (flag, priority DESC) order within each scope.
CREATE INDEX IF NOT EXISTS feature_rules_scope_idx
    ON feature_rules (scope, flag, priority DESC);

-- One row a save of the rules: a unified diff of the normalised text.
CREATE TABLE IF NOT EXISTS feature_changelog (
    id         BIGSERIAL PRIMARY KEY,
    changed_at TIMESTAMPTZ NOT NULL,
    actor      TEXT   NOT NULL,
    comment    TEXT   NOT NULL,
    diff       TEXT   NOT NULL,
    revision   BIGINT NOT NULL
);

CREATE UNIQUE INDEX IF NOT EXISTS feature_changelog_revision_idx
    ON feature_changelog (revision);

-- A single row counting saves. Servers poll it to notice new rules; writers
-- bump it first in their transaction, which serialises concurrent saves.
CREATE TABLE IF NOT EXISTS feature_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision BIGINT  NOT NULL
);

INSERT INTO feature_revision (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
