-- Rules pages are filled to 70% (b4ffb0d), so a save changing values
-- updates rows in place (HOT updates: no index written). Pages written
-- from now on leave the room.
ALTER TABLE feature_rules SET (fillfactor = 70);
