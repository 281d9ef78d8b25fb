-- scopeflags schema (PostgreSQL dialect): the tables after every migration
-- of sqlstore/migrations, for reading. It is not applied: the migrations are
-- (docs/migrations.md), and TestMigrationsMakeSchemaSQL checks that they make
-- exactly these tables, here and with SQLite's rewrites (schema.go).

-- One row a rule: (flag, scope, priority, value) and an optional condition
-- (an expr-lang expression; '' when none). Priorities are unique within a
-- flag and the highest matching rule wins. A flag may repeat a scope only
-- with different conditions: the later rule could never match otherwise.
-- Conditions are at most 1,500 bytes so the unique index always fits.
-- Pages are filled to 70% so that a save changing values updates the rows
-- in place (PostgreSQL's HOT updates: no index is written, since none holds
-- the value); databases made before get the setting from migration 5.
CREATE TABLE IF NOT EXISTS feature_rules (
    flag      TEXT    NOT NULL,
    scope     TEXT    NOT NULL,
    priority  INTEGER NOT NULL,
    value     TEXT    NOT NULL,
    condition TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (flag, priority),
    UNIQUE (flag, scope, condition)
) WITH (fillfactor = 70);

-- Serves the prioritized query: rows for a handful of active scopes, already
-- in (flag, priority DESC) order within each scope.
CREATE INDEX IF NOT EXISTS feature_rules_scope_idx
    ON feature_rules (scope, flag, priority DESC);

-- One row a declared flag: its type, code default (in the text form rules
-- use), description, external mark, variants (a JSON array of
-- {"name", "value"}), JSON Schema (json flags), rollout salt ('' for the
-- flag name), owner (who answers for it, '' for nobody) and permanent mark
-- (a flag meant to live forever, never reported stale; both from migration
-- 7). Written by "flags push".
CREATE TABLE IF NOT EXISTS feature_flags (
    name          TEXT    PRIMARY KEY,
    type          TEXT    NOT NULL,
    default_value TEXT    NOT NULL,
    description   TEXT    NOT NULL,
    external      BOOLEAN NOT NULL,
    variants      TEXT    NOT NULL,
    json_schema   TEXT    NOT NULL,
    salt          TEXT    NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    owner         TEXT    NOT NULL DEFAULT '',
    permanent     BOOLEAN NOT NULL DEFAULT FALSE
);

-- One row a change: a save of the rules, a push of declarations or a
-- revert; every bump of the revision writes one. diff is the unified diff
-- of the normalised rules text (and of the declarations text, when they
-- changed); rules_text and declarations_text are the whole texts after the
-- change, so any entry can be reverted to. rules_text is NULL for entries
-- written before it was recorded, declarations_text for entries written
-- before declarations were recorded.
CREATE TABLE IF NOT EXISTS feature_changelog (
    id                BIGSERIAL PRIMARY KEY,
    changed_at        TIMESTAMPTZ NOT NULL,
    actor             TEXT   NOT NULL,
    comment           TEXT   NOT NULL,
    diff              TEXT   NOT NULL,
    revision          BIGINT NOT NULL,
    rules_text        TEXT,
    declarations_text TEXT
);

CREATE UNIQUE INDEX IF NOT EXISTS feature_changelog_revision_idx
    ON feature_changelog (revision);

-- One row a flag a changelog entry touched: whose rules or declaration
-- the change added, removed or changed (the flags its diff names), so the
-- changelog can be read a flag at a time. Written with the entry; entries
-- written before it existed got theirs from their diffs (migration 6), and
-- a restore rebuilds it from the diffs.
CREATE TABLE IF NOT EXISTS feature_changelog_flags (
    entry_id BIGINT NOT NULL REFERENCES feature_changelog (id),
    flag     TEXT   NOT NULL,
    PRIMARY KEY (entry_id, flag)
);

CREATE INDEX IF NOT EXISTS feature_changelog_flags_flag_idx
    ON feature_changelog_flags (flag, entry_id);

-- One row an API key. Only the SHA-256 of the key is kept (hex); hint is
-- its first characters, so people can tell keys apart. scope is one of
-- read_external, read, write, admin. Revoked keys stay listed.
CREATE TABLE IF NOT EXISTS feature_api_keys (
    id           BIGSERIAL PRIMARY KEY,
    hash         TEXT NOT NULL UNIQUE,
    hint         TEXT NOT NULL,
    name         TEXT NOT NULL,
    scope        TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

-- One row a browser session, made by logging in with a key. Only the
-- SHA-256 of the cookie's value is kept; csrf is the token forms carry.
CREATE TABLE IF NOT EXISTS feature_sessions (
    hash       TEXT   PRIMARY KEY,
    key_id     BIGINT NOT NULL REFERENCES feature_api_keys (id),
    csrf       TEXT   NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- One row a key event: a key created or revoked (action "create" or
-- "revoke"), by whom (actor) and when, with the key's id, name and scope
-- as they were. Apart from the rules: it never bumps the revision.
CREATE TABLE IF NOT EXISTS feature_audit (
    id       BIGSERIAL PRIMARY KEY,
    at       TIMESTAMPTZ NOT NULL,
    actor    TEXT   NOT NULL,
    action   TEXT   NOT NULL,
    key_id   BIGINT NOT NULL,
    key_name TEXT   NOT NULL,
    scope    TEXT   NOT NULL
);

-- Evaluation counts: one row a flag, day (UTC), server (role and host),
-- reason and answer (variant, else the value's text cut to 200 bytes;
-- other marks the answers beyond a flag's first 16, counted together),
-- with how many evaluations gave it and the last time one did. Servers
-- add their counts every flush (one upsert); days older than the
-- retention (90 by default) are deleted by the writers.
CREATE TABLE IF NOT EXISTS flag_usage (
    flag              TEXT    NOT NULL,
    day               DATE    NOT NULL,
    server_role       TEXT    NOT NULL,
    server_host       TEXT    NOT NULL,
    reason            TEXT    NOT NULL,
    variant           TEXT    NOT NULL,
    value             TEXT    NOT NULL,
    other             BOOLEAN NOT NULL,
    count             BIGINT  NOT NULL,
    last_evaluated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (flag, day, server_role, server_host, reason, variant, value, other)
);

-- Serves the windows of days (all flags) and the retention's deletes;
-- the primary key serves a flag's days.
CREATE INDEX IF NOT EXISTS flag_usage_day_idx
    ON flag_usage (day, flag);

-- A single row counting saves. Servers poll it to notice new rules; writers
-- bump it first in their transaction, which serialises concurrent saves.
CREATE TABLE IF NOT EXISTS feature_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision BIGINT  NOT NULL
);

INSERT INTO feature_revision (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
