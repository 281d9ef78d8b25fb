// Package ofprovider is an OpenFeature provider for Go
// (github.com/open-feature/go-sdk) that evaluates flags in-process over a
// features.Engine: no network, the engine's current snapshot, the same
// rules, scopes, conditions and sticky rollouts as features.GetFlag.
//
// It owns the translation between OpenFeature and the engine: the
// evaluation context (through a features.ContextMapper, the mapping OFREP
// shares), the value types and error codes, and the provider events
// (PROVIDER_READY, PROVIDER_STALE, PROVIDER_CONFIGURATION_CHANGED with the
// changed flags, computed by controller.ChangedFlags). It neither loads
// nor polls rules: the application runs the engine.
//
// The package is not named openfeature so that it can be imported beside
// the SDK's package of that name. See docs/openfeature.md.
package ofprovider
