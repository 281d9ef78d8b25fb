package controller

// ChangedFlags returns, sorted, the names of the flags whose rules or
// declaration differ between old and new: flags added, removed, or with a
// rule or a declaration (type, default, variants, salt, description, ...)
// changed. A flag only documented in code (no rules, no declaration) is
// never listed. A nil snapshot counts as one with no flags; the same
// snapshot twice gives nil.
//
// It is what change events (an OpenFeature provider's
// CONFIGURATION_CHANGED) report; it costs one pass over both snapshots'
// rules.
func ChangedFlags(old, new *Snapshot) []string {
	if old == new {
		return nil
	}
	if old == nil {
		old = emptySnapshot
	}
	if new == nil {
		new = emptySnapshot
	}
	var out []string
	a, b := old.names, new.names
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			if defined(old.flags[a[i]]) {
				out = append(out, a[i])
			}
			i++
		case i == len(a) || b[j] < a[i]:
			if defined(new.flags[b[j]]) {
				out = append(out, b[j])
			}
			j++
		default:
			if !sameFlag(old.flags[a[i]], new.flags[b[j]]) {
				out = append(out, a[i])
			}
			i++
			j++
		}
	}
	return out
}

// defined reports whether f has rules or a declaration.
func defined(f *flagEntry) bool { return len(f.rules) > 0 || f.def != nil }

// sameFlag reports whether x and y have the same rules (in their
// normalised order) and the same declaration.
func sameFlag(x, y *flagEntry) bool {
	if len(x.rules) != len(y.rules) || (x.def == nil) != (y.def == nil) {
		return false
	}
	if x.def != nil && !x.def.Equal(*y.def) {
		return false
	}
	for k := range x.rules {
		if x.rules[k].Rule != y.rules[k].Rule {
			return false
		}
	}
	return true
}
