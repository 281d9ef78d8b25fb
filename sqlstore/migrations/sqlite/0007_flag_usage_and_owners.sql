-- Evaluation counts: every server adds its counts to flag_usage, a row
-- per flag, day (UTC), server (role and host), reason and answer (the
-- variant, else the value's text cut to 200 bytes; other marks the
-- answers beyond a flag's first 16, counted together), so the stale report
-- and the usage pages can tell which flags are still evaluated, by whom
-- and with what result. Days older than the retention (90 by default) are
-- deleted by the writers. Declarations gain an owner and a permanent mark
-- (kill switches and operational toggles, never reported stale). Only a
-- table and columns with defaults are added, so binaries of version 6 keep
-- running on this schema during a rolling upgrade: their pushes keep the
-- owner and permanent mark of the declarations they update (and give new
-- ones none), and they count no evaluations; they refuse to read a
-- changelog entry's declarations text that names owners (unknown field),
-- so reverts to such entries wait for the newer binaries.
-- compatible-from: 6
ALTER TABLE feature_flags ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE feature_flags ADD COLUMN permanent BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE flag_usage (
    flag              TEXT    NOT NULL,
    day               DATE    NOT NULL,
    server_role       TEXT    NOT NULL,
    server_host       TEXT    NOT NULL,
    reason            TEXT    NOT NULL,
    variant           TEXT    NOT NULL,
    value             TEXT    NOT NULL,
    other             BOOLEAN NOT NULL,
    count             BIGINT  NOT NULL,
    last_evaluated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (flag, day, server_role, server_host, reason, variant, value, other)
);

CREATE INDEX flag_usage_day_idx ON flag_usage (day, flag);
