-- Changelog entries record the declarations after them (7886b3d). The
-- newest entry then gets the current declarations (a step in Go, after
-- this file); older ones keep NULL.
ALTER TABLE feature_changelog ADD COLUMN declarations_text TEXT;
