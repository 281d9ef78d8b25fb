-- Rules get conditions (5e0c232): a condition column, priorities unique
-- within a flag, a scope repeated only with different conditions. SQLite
-- cannot change a table's keys, so the table is rebuilt, rules kept. Flags
-- get declarations.
DROP INDEX feature_rules_scope_idx;
ALTER TABLE feature_rules RENAME TO feature_rules_old;

CREATE TABLE feature_rules (
    flag      TEXT    NOT NULL,
    scope     TEXT    NOT NULL,
    priority  INTEGER NOT NULL,
    value     TEXT    NOT NULL,
    condition TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (flag, priority),
    UNIQUE (flag, scope, condition)
);

CREATE INDEX feature_rules_scope_idx
    ON feature_rules (scope, flag, priority DESC);

INSERT INTO feature_rules (flag, scope, priority, value)
    SELECT flag, scope, priority, value FROM feature_rules_old;
DROP TABLE feature_rules_old;

CREATE TABLE feature_flags (
    name          TEXT    PRIMARY KEY,
    type          TEXT    NOT NULL,
    default_value TEXT    NOT NULL,
    description   TEXT    NOT NULL,
    external      BOOLEAN NOT NULL,
    variants      TEXT    NOT NULL,
    json_schema   TEXT    NOT NULL,
    salt          TEXT    NOT NULL,
    updated_at    TIMESTAMP NOT NULL
);
