-- API keys and browser sessions (c7d265a); changelog entries record the
-- whole rules text after them. The newest entry then gets the current
-- rules (a step in Go, after this file), so it can be reverted to.
ALTER TABLE feature_changelog ADD COLUMN rules_text TEXT;

CREATE TABLE feature_api_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    hash         TEXT NOT NULL UNIQUE,
    hint         TEXT NOT NULL,
    name         TEXT NOT NULL,
    scope        TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at   TIMESTAMP
);

CREATE TABLE feature_sessions (
    hash       TEXT   PRIMARY KEY,
    key_id     BIGINT NOT NULL REFERENCES feature_api_keys (id),
    csrf       TEXT   NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
