-- scopeflags canonical schema (PostgreSQL dialect).
-- Applied on every open; every statement is idempotent.
-- SQLite gets the small rewrites listed in schema.go (sqliteRewrites), kept beside this file.

-- One row a rule: (flag, scope, priority, value) and an optional condition
-- (an expr-lang expression; '' when none). Priorities are unique within a
-- flag and the highest matching rule wins. A flag may repeat a scope only
-- with different conditions: the later rule could never match otherwise.
-- Conditions are at most 1,500 bytes so the unique index always fits.
CREATE TABLE IF NOT EXISTS feature_rules (
    flag      TEXT    NOT NULL,
    scope     TEXT    NOT NULL,
    priority  INTEGER NOT NULL,
    value     TEXT    NOT NULL,
    condition TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (flag, priority),
    UNIQUE (flag, scope, condition)
);

-- Serves the prioritized query: rows for a handful of active scopes, already
-- in (flag, priority DESC) order within each scope.
CREATE INDEX IF NOT EXISTS feature_rules_scope_idx
    ON feature_rules (scope, flag, priority DESC);

-- One row a declared flag: its type, code default (in the text form rules
-- use), description, external mark, variants (a JSON array of
-- {"name", "value"}), JSON Schema (json flags) and rollout salt ('' for the
-- flag name). Written by "flags push".
CREATE TABLE IF NOT EXISTS feature_flags (
    name          TEXT    PRIMARY KEY,
    type          TEXT    NOT NULL,
    default_value TEXT    NOT NULL,
    description   TEXT    NOT NULL,
    external      BOOLEAN NOT NULL,
    variants      TEXT    NOT NULL,
    json_schema   TEXT    NOT NULL,
    salt          TEXT    NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

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
