-- Rules get conditions (5e0c232): a condition column, priorities unique
-- within a flag, a scope repeated only with different conditions. Flags
-- get declarations.
ALTER TABLE feature_rules ADD COLUMN condition TEXT NOT NULL DEFAULT '';
ALTER TABLE feature_rules DROP CONSTRAINT feature_rules_pkey;
ALTER TABLE feature_rules DROP CONSTRAINT feature_rules_flag_priority_key;
ALTER TABLE feature_rules ADD PRIMARY KEY (flag, priority);
ALTER TABLE feature_rules ADD UNIQUE (flag, scope, condition);

CREATE TABLE feature_flags (
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
