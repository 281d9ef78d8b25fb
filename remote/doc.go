// Package remote makes a feature-info server the rule source of an
// application's engine: the configuration is pulled over HTTP
// (GET /api/v1/config with a read key) and evaluated locally, so a
// service needs no database credentials and evaluates exactly as one
// reading SQL does.
//
// A Source is a controller.RuleSource and a controller.Watcher. It owns
// the client side of pulling: the first fetch, a refetch on each event of
// the server's change stream (GET /api/v1/events, resumed with
// Last-Event-ID), conditional polling as a fallback (If-None-Match),
// exponential backoff with jitter after failures, keeping the last good
// configuration through server outages, and an optional cache file for
// starting while the server is down. A body is committed (and its ETag
// used) only after it has been read whole and validated.
//
// A Source is also a features.UsageSink: an engine over it sends its
// evaluation counts to the server (POST /api/v1/usage, with the same key)
// at each flush, so the server's stale report sees flags evaluated only
// in pulling processes. A report the server does not store is an error,
// and the engine keeps its counts for the next flush.
//
// Its background work runs while the engine runs: features.Engine.Run
// (controller.Live.Run) calls Watch with its context, and the stream and
// polling stop when that context is done. Without Run, each Load and
// Revision asks the server itself.
package remote
