package sqlstore_test

import (
	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/ofrep"
	"github.com/scopeflags/scopeflags/sqlstore"
)

// The store is the controller's rule source and scope resolver. The check
// lives in a test so that sqlstore itself does not depend on evaluation.
var (
	_ controller.RuleSource    = (*sqlstore.Store)(nil)
	_ controller.ScopeResolver = (*sqlstore.Store)(nil)
	// The key table authorizes OFREP requests.
	_ ofrep.Keys = (*sqlstore.KeyCache)(nil)
)
