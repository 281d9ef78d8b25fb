package controller_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/scopeflags/scopeflags/controller"
	"github.com/scopeflags/scopeflags/rules"
	"github.com/scopeflags/scopeflags/scopes"
)

func TestChangedFlags(t *testing.T) {
	reg := scopes.NewRegistry()
	boolDef := rules.Definition{Name: "d.bool", Type: rules.Boolean, Default: "false"}
	build := func(text string, defs []rules.Definition, known ...string) *controller.Snapshot {
		return controller.Build(mustParse(t, text), reg, 1, controller.BuildOptions{Defs: defs, Known: known})
	}
	base := "a default 1 x\na team:qa 5 y\nb default 1 z\nc default 1 q\n    when plan == \"pro\"\n"
	baseDefs := []rules.Definition{boolDef}
	with := func(d rules.Definition, edit func(*rules.Definition)) []rules.Definition {
		edit(&d)
		return []rules.Definition{d}
	}
	tests := []struct {
		name  string
		text  string
		defs  []rules.Definition
		known []string
		want  []string
	}{
		{"identical rebuild", base, baseDefs, nil, nil},
		{"only documented flags added", base, baseDefs, []string{"doc.only", "zzz"}, nil},
		{"value changed", "a default 1 x\na team:qa 5 Y\nb default 1 z\nc default 1 q\n    when plan == \"pro\"\n", baseDefs, nil, []string{"a"}},
		{"scope changed", "a default 1 x\na team:dev 5 y\nb default 1 z\nc default 1 q\n    when plan == \"pro\"\n", baseDefs, nil, []string{"a"}},
		{"priority changed", "a default 1 x\na team:qa 6 y\nb default 1 z\nc default 1 q\n    when plan == \"pro\"\n", baseDefs, nil, []string{"a"}},
		{"condition changed", "a default 1 x\na team:qa 5 y\nb default 1 z\nc default 1 q\n    when plan == \"free\"\n", baseDefs, nil, []string{"c"}},
		{"rule added", base + "b team:qa 9 w\n", baseDefs, nil, []string{"b"}},
		{"flag removed and added", "a default 1 x\na team:qa 5 y\nc default 1 q\n    when plan == \"pro\"\nnew default 1 n\n", baseDefs, nil, []string{"b", "new"}},
		{"declaration removed", base, nil, nil, []string{"d.bool"}},
		{"declaration default changed", base, with(boolDef, func(d *rules.Definition) { d.Default = "true" }), nil, []string{"d.bool"}},
		{"declaration description changed", base, with(boolDef, func(d *rules.Definition) { d.Description = "new words" }), nil, []string{"d.bool"}},
		{"declaration added", base, append(with(boolDef, func(*rules.Definition) {}), rules.Definition{Name: "b", Type: rules.String, Default: ""}), nil, []string{"b"}},
		{"everything gone", "", nil, nil, []string{"a", "b", "c", "d.bool"}},
	}
	old := build(base, baseDefs)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := controller.ChangedFlags(old, build(tt.text, tt.defs, tt.known...))
			assert.Equal(t, tt.want, got)
		})
	}
	t.Run("same snapshot", func(t *testing.T) {
		assert.Nil(t, controller.ChangedFlags(old, old))
	})
	t.Run("from nil", func(t *testing.T) {
		assert.Equal(t, []string{"a", "b", "c", "d.bool"}, controller.ChangedFlags(nil, old))
		assert.Equal(t, []string{"a", "b", "c", "d.bool"}, controller.ChangedFlags(old, nil))
	})
}
