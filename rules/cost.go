package rules

import (
	"cmp"
	"errors"
	"fmt"
	"regexp/syntax"
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
)

// The cost model. A condition's worst-case cost is computed from its
// syntax tree, not from the program that runs it, so it survives a change
// of evaluator: every node costs a few units, and a node that reads,
// compares, scans or copies its inputs costs in proportion to the largest
// input it may be given. What a condition reads is bounded by NewTarget
// (MaxAttrString, MaxAttrText, MaxAttrValues): an attribute is assumed to
// be as large as those limits let it be, a literal is as large as it is.
//
// One unit is calibrated (BenchmarkConditionCost in cost_bench_test.go) to
// about 4 ns of worst-case evaluation on the development machine (a 2-core
// x86-64 VM, quiet; twice that under load): the coefficients below make
// every shape of condition take 2 to 5 ns a unit there. docs/rule-format.md
// has the table.
//
// A flag's worst case is CostFlag plus, for every rule (each may be
// walked), CostRule plus its condition's cost: FlagCost.
//
// Prerequisites (conditions that read other flags, planned) add the
// worst case of the flags they read: the coster's flag hook is where the
// node that reads a flag will add it (see costOf's CallNode case).
const (
	// CostFlag is what any flag costs in a bulk evaluation: the lookup and
	// encoding its answer.
	CostFlag = 20
	// CostRule is what trying one rule costs besides its condition: the
	// scope check (memoised per request) and the loop.
	CostRule = 2
	// CostCondition is what running any condition costs besides its
	// nodes: preparing the evaluator, checking the target's sizes and,
	// when it fails, describing the error.
	CostCondition = 400

	costNode = 1 // every node: a load, a jump, a comparison of scalars
	// costEqualValue is a deep comparison (== of two structures) per
	// value of the smaller side: a map entry's lookup and compare.
	costEqualValue = 80
	// costScanValue is a walk over a list (max, min) per element.
	costScanValue = 2
	// costInValue is a search of a list (in) per element: each is
	// compared with the needle, by reflection when their types differ.
	costInValue = 6
	// bytesPerUnit is what one unit compares or hashes of strings
	// (memcmp, map hashing).
	bytesPerUnit = 512
	// searchBytesPerUnit is what one unit searches (contains, indexOf):
	// strings.Index is linear but slower than a comparison.
	searchBytesPerUnit = 16
	// copyBytesPerUnit is what one unit converts or copies (replace,
	// trim, number parsing).
	copyBytesPerUnit = 8
	// runeBytesPerUnit is what one unit counts runes of (len).
	runeBytesPerUnit = 4
	// caseUnitsPerByte is what upper and lower cost per byte: each rune
	// is mapped through the Unicode tables.
	caseUnitsPerByte = 3
	// hashBytesPerUnit is what the rollout hash (byte-at-a-time FNV-1a)
	// reads in one unit.
	hashBytesPerUnit = 4
	// regexpStepsPerUnit is what one unit runs of a regexp: the matcher
	// visits each (instruction, input byte) pair at most once, a step
	// of the NFA taking about a unit.
	regexpStepsPerUnit = 1
)

// bound is the largest value a node may yield.
type bound struct {
	str  int64 // bytes of its longest string
	vals int64 // values: 1 for a scalar, more for a list or a map
	text int64 // bytes of all its strings
}

var (
	scalarBound = bound{vals: 1}
	// attrBound is an attribute as NewTarget lets a condition read it.
	attrBound = bound{str: MaxAttrString, vals: MaxAttrValues, text: MaxAttrText}
	// keyBound is the targeting key.
	keyBound = bound{str: MaxAttrString, vals: 1, text: MaxAttrString}
	// envBound is $env: at most MaxAttrValues attributes, each within
	// attrBound.
	envBound = bound{str: MaxAttrString, vals: MaxAttrValues * (MaxAttrValues + 1), text: MaxAttrValues * (MaxAttrText + MaxAttrString)}
)

func strBound(s string) bound { return bound{str: int64(len(s)), vals: 1, text: int64(len(s))} }

func maxBound(a, b bound) bound {
	return bound{str: max(a.str, b.str), vals: max(a.vals, b.vals), text: max(a.text, b.text)}
}

// equalCost is a comparison of a and b: a deep comparison stops at the
// smaller.
func equalCost(a, b bound) int64 {
	k := min(a.text, b.text) / bytesPerUnit
	if v := min(a.vals, b.vals); v > 1 { // two structures: compared deeply
		k += v * costEqualValue
	}
	return k
}

// coster computes a condition's worst-case cost.
type coster struct {
	salt string
	// flag is the prerequisites hook: the worst case of flag name, which
	// a node that reads another flag adds to its own. nil while no
	// condition can read a flag.
	flag func(name string) (int64, bool)
	err  error
}

// conditionCost is the worst-case cost of the accepted condition tree,
// whose rollouts hash with salt. Every node is costed on the tree the
// author wrote.
func conditionCost(tree ast.Node, salt string) (int64, error) {
	c := coster{salt: salt}
	n, _ := c.cost(tree)
	return CostCondition + n, c.err
}

// cost returns the worst-case cost of n and the bound of its value.
func (c *coster) cost(n ast.Node) (int64, bound) {
	switch n := n.(type) {
	case nil:
		return 0, scalarBound
	case *ast.NilNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return costNode, scalarBound
	case *ast.StringNode:
		return costNode, strBound(n.Value)
	case *ast.BytesNode:
		return costNode, bound{str: int64(len(n.Value)), vals: 1, text: int64(len(n.Value))}
	case *ast.IdentifierNode:
		switch n.Value {
		case "$env":
			return costNode, envBound
		case "targetingKey":
			return costNode, keyBound
		}
		return costNode, attrBound
	case *ast.ChainNode:
		return c.cost(n.Node)
	case *ast.MemberNode:
		k, b := c.cost(n.Node)
		pk, pb := c.cost(n.Property)
		if isEnv(n.Node) {
			b = attrBound // $env.name is an attribute
		}
		// A map lookup hashes the key; the member is part of the value.
		return k + pk + costNode + pb.str/bytesPerUnit, b
	case *ast.SliceNode:
		k, b := c.cost(n.Node)
		fk, _ := c.cost(n.From)
		tk, _ := c.cost(n.To)
		return k + fk + tk + costNode, b
	case *ast.ConditionalNode:
		ck, _ := c.cost(n.Cond)
		k1, b1 := c.cost(n.Exp1)
		k2, b2 := c.cost(n.Exp2)
		return ck + max(k1, k2) + costNode, maxBound(b1, b2)
	case *ast.UnaryNode:
		k, _ := c.cost(n.Node)
		return k + costNode, scalarBound
	case *ast.ArrayNode:
		k, b := int64(costNode), bound{vals: 1}
		for _, e := range n.Nodes {
			ek, eb := c.cost(e)
			k += ek + costNode
			b = bound{str: max(b.str, eb.str), vals: b.vals + eb.vals, text: b.text + eb.text}
		}
		return k, b
	case *ast.MapNode:
		k, b := int64(costNode), bound{vals: 1}
		for _, p := range n.Pairs {
			pk, pb := c.cost(p)
			k += pk
			b = bound{str: max(b.str, pb.str), vals: b.vals + pb.vals, text: b.text + pb.text}
		}
		return k, b
	case *ast.PairNode:
		kk, kb := c.cost(n.Key)
		vk, vb := c.cost(n.Value)
		return kk + vk + costNode + kb.str/bytesPerUnit, bound{str: max(kb.str, vb.str), vals: vb.vals, text: kb.text + vb.text}
	case *ast.BinaryNode:
		return c.binary(n)
	case *ast.BuiltinNode:
		return c.builtin(n)
	case *ast.CallNode:
		return c.call(n)
	}
	// The sandbox refuses every other node; costing one is a bug.
	c.fail("no cost for %T", n)
	return costNode, scalarBound
}

func (c *coster) fail(format string, args ...any) {
	if c.err == nil {
		c.err = errorf(ErrCondition, "bad condition: "+format, args...)
	}
}

func (c *coster) binary(n *ast.BinaryNode) (int64, bound) {
	lk, lb := c.cost(n.Left)
	if arr, ok := n.Right.(*ast.ArrayNode); ok && (n.Operator == "in" || n.Operator == "not in") {
		// Each element is compared with the needle. (Every node is
		// walked once: a second walk of a subtree would double at every
		// level of nesting.)
		k := lk + 2*costNode
		for _, e := range arr.Nodes {
			ek, eb := c.cost(e)
			k += ek + costNode + equalCost(lb, eb)
		}
		return k, scalarBound
	}
	rk, rb := c.cost(n.Right)
	k := lk + rk + costNode
	switch n.Operator {
	case "==", "!=":
		return k + equalCost(lb, rb), scalarBound
	case "<", ">", "<=", ">=":
		return k + min(lb.str, rb.str)/bytesPerUnit, scalarBound
	case "in", "not in":
		// A list: every element compared, together no more than a deep
		// comparison of the whole; a map: the needle hashed.
		return k + rb.vals*costInValue + equalCost(lb, rb) + lb.str/bytesPerUnit, scalarBound
	case "contains":
		return k + (lb.str+rb.str)/searchBytesPerUnit, scalarBound
	case "startsWith", "endsWith":
		return k + min(lb.str, rb.str)/bytesPerUnit, scalarBound
	case "matches":
		insts := int64(1)
		if lit, ok := n.Right.(*ast.StringNode); ok {
			insts = int64(patternInsts(lit.Value))
		}
		return k + insts*lb.str/regexpStepsPerUnit, scalarBound
	case "??":
		return k, maxBound(lb, rb)
	case "+":
		// Numbers only (the sandbox); a string that slipped through is
		// bounded by its sides.
		return k + (lb.str+rb.str)/copyBytesPerUnit, bound{str: lb.str + rb.str, vals: 1, text: lb.str + rb.str}
	}
	// and, or, arithmetic: scalars.
	return k, scalarBound
}

// patternInsts is the number of regexp instructions of pattern (the
// sandbox has checked that it compiles).
func patternInsts(pattern string) int {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return MaxPatternInsts
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return MaxPatternInsts
	}
	return len(prog.Inst)
}

func (c *coster) builtin(n *ast.BuiltinNode) (int64, bound) {
	k := int64(costNode)
	args := make([]bound, len(n.Arguments))
	for i, a := range n.Arguments {
		ak, ab := c.cost(a)
		k += ak
		args[i] = ab
	}
	arg := func(i int) bound {
		if i < len(args) {
			return args[i]
		}
		return scalarBound
	}
	a := arg(0)
	switch n.Name {
	case "len": // counts the runes of a string
		return k + a.str/runeBytesPerUnit, scalarBound
	case "int", "float": // parse a string
		return k + a.str/copyBytesPerUnit, scalarBound
	case "abs", "ceil", "floor", "round", "type",
		"bitand", "bitor", "bitxor", "bitnand", "bitnot", "bitshl", "bitshr", "bitushr":
		return k, scalarBound
	case "trim":
		cut := int64(1)
		if len(args) > 1 {
			cut = max(1, arg(1).str)
		}
		return k + a.str*cut/copyBytesPerUnit, a
	case "trimPrefix", "trimSuffix", "hasPrefix", "hasSuffix":
		return k + min(a.str, arg(1).str)/bytesPerUnit, a
	case "indexOf", "lastIndexOf": // a search
		return k + (a.str+arg(1).str)/searchBytesPerUnit, scalarBound
	case "upper", "lower":
		// Invalid UTF-8 becomes U+FFFD: up to three bytes for one.
		out := bound{str: 3 * a.str, vals: 1, text: 3 * a.str}
		return k + caseUnitsPerByte*a.str, out
	case "replace":
		return k + 2*a.str/copyBytesPerUnit, a
	case "max", "min": // every element of list arguments compared
		var vals, text int64
		for _, b := range args {
			vals += b.vals
			text += b.text
		}
		return k + vals*costScanValue + text/bytesPerUnit, bound{str: a.str, vals: 1, text: a.str}
	case "first", "last":
		return k, a
	case "get":
		return k + arg(1).str/bytesPerUnit, a
	}
	c.fail("no cost for %s()", n.Name)
	return k, scalarBound
}

func (c *coster) call(n *ast.CallNode) (int64, bound) {
	k := int64(costNode)
	id, _ := n.Callee.(*ast.IdentifierNode)
	saltArg := 1 // percent(p, salt)
	if id != nil && id.Value == "bucket" {
		saltArg = 0 // bucket(salt)
	}
	salt := int64(len(c.salt))
	for i, a := range n.Arguments {
		ak, ab := c.cost(a)
		k += ak
		if i == saltArg {
			salt = ab.str
		}
	}
	if id == nil {
		c.fail("no cost for this call")
		return k, scalarBound
	}
	switch id.Value {
	case "percent", "bucket":
		// The rollout hash reads the salt and the targeting key.
		return k + (salt+MaxAttrString)/hashBytesPerUnit, scalarBound
	}
	// Prerequisites will be calls that read another flag: they add the
	// flag's worst case, through c.flag, here.
	if c.flag != nil {
		if fk, ok := c.flag(id.Value); ok {
			return k + fk, attrBound
		}
	}
	c.fail("no cost for %s()", id.Value)
	return k, scalarBound
}

// Cost returns the condition's worst-case cost in units (see the cost
// model above), computed once when it was compiled.
func (c *Condition) Cost() int64 { return c.cost }

// RuleCost is what trying a rule with condition c (nil: none, or one
// that does not compile and so is never run) costs at worst.
func RuleCost(c *Condition) int64 {
	if c == nil {
		return CostRule
	}
	return CostRule + c.cost
}

// FlagCost is the worst case of a flag whose rules' conditions are conds
// (nil for a rule without one): CostFlag plus every rule's RuleCost, since
// an evaluation may walk them all.
func FlagCost(conds []*Condition) int64 {
	k := int64(CostFlag)
	for _, c := range conds {
		k += RuleCost(c)
	}
	return k
}

// DefaultFlagBudget is the per-flag budget a save enforces: a flag whose
// rules a write changes and whose worst case (FlagCost) is larger is
// refused. It is about 4 ms of worst-case evaluation: two conditions
// with the largest patterns the sandbox allows fit, as do a dozen deep
// comparisons of two attributes; the probe's 124 of them (10 million
// units) do not.
const DefaultFlagBudget = 1_000_000

// ErrCost marks a flag whose worst-case cost is over the per-flag budget.
var ErrCost = errors.New("rules: over the per-flag cost budget")

// CheckOptions say how CheckChange judges a change. The zero value is the
// defaults.
type CheckOptions struct {
	// Budget is the per-flag cost budget; DefaultFlagBudget when 0 or
	// less.
	Budget int64
	// Boolean reports whether a flag is documented with the boolean value
	// domain (features.FlagDoc.Domain "boolean"). A rule of such a flag,
	// not declared with a type, whose value reads as "off" (Negations) is
	// an error, not a warning, unless AllowNegations. nil: no flag is.
	Boolean func(flag string) bool
	// AllowNegations keeps those rules as warnings.
	AllowNegations bool
}

func (o CheckOptions) budget() int64 {
	if o.Budget > 0 {
		return o.Budget
	}
	return DefaultFlagBudget
}

// CheckChange is Check for a write that replaces the rules before with rs.
// Every problem Check finds is an error, except the cost: a flag whose
// worst case (FlagCost) is over budget (opts.Budget) is an error only
// when the write changes its rules (its set of rules in rs differs from
// that in before); a flag the write does not change is kept as it is and
// listed among the warnings. Both name the flag's first line and the
// figures ("ui.x costs up to N units, over the per-flag budget of M"),
// and unwrap to ErrCost. before nil: every flag is changed. The warnings
// also list every rule of an undeclared flag whose value reads as a
// negation (Negations); for a flag documented as boolean (opts.Boolean)
// the same problem is an error unless opts.AllowNegations. Errors are in
// line order (rules not from text: in the order of Rule.Nth).
func CheckChange(before, rs []Rule, codecs map[string]*Codec, opts CheckOptions) (errs ErrorList, warnings []*Error) {
	budget := opts.budget()
	errs, conds := check(rs, codecs)
	type flagCost struct {
		first, costliest int // indexes in rs
		cost, worst      int64
	}
	flags := make(map[string]*flagCost)
	var order []string
	for i, r := range rs {
		f := flags[r.Flag]
		if f == nil {
			f = &flagCost{first: i, costliest: i, cost: CostFlag}
			flags[r.Flag] = f
			order = append(order, r.Flag)
		}
		k := RuleCost(conds[i])
		f.cost += k
		if k > f.worst {
			f.costliest, f.worst = i, k
		}
	}
	var changed map[string]bool
	if before != nil {
		changed = changedFlags(before, rs)
	}
	for _, name := range order {
		f := flags[name]
		if f.cost <= budget {
			continue
		}
		msg := fmt.Sprintf("%s costs up to %d units, over the per-flag budget of %d", name, f.cost, budget)
		if rs[f.costliest].Line > 0 {
			msg += fmt.Sprintf(" (its costliest rule, line %d, costs %d)", rs[f.costliest].Line, f.worst)
		}
		if changed == nil || changed[name] {
			errs = append(errs, ruleError(rs, f.first, false, ErrCost, msg))
			continue
		}
		warnings = append(warnings, ruleError(rs, f.first, false, ErrCost,
			msg+"; kept, since this change does not touch it, but bulk evaluations may leave it out"))
	}
	for _, i := range negationRules(rs, codecs) {
		w := negationError(rs, i)
		if opts.Boolean != nil && !opts.AllowNegations && opts.Boolean(rs[i].Flag) {
			errs = append(errs, w)
		} else {
			warnings = append(warnings, w)
		}
	}
	slices.SortStableFunc(errs, byPlace)
	return errs, warnings
}

// changedFlags returns the flags whose set of rules (lines aside) differs
// between before and after; a flag in only one of them has changed.
func changedFlags(before, after []Rule) map[string]bool {
	group := func(rs []Rule) map[string][]Rule {
		m := make(map[string][]Rule)
		for _, r := range rs {
			r.Line, r.Position = 0, 0
			m[r.Flag] = append(m[r.Flag], r)
		}
		for _, l := range m {
			slices.SortFunc(l, func(a, b Rule) int {
				return cmp.Or(cmp.Compare(a.Priority, b.Priority), strings.Compare(a.Scope, b.Scope),
					strings.Compare(a.Condition, b.Condition), strings.Compare(a.Value, b.Value))
			})
		}
		return m
	}
	b, a := group(before), group(after)
	changed := make(map[string]bool)
	for name, l := range a {
		if !slices.Equal(l, b[name]) {
			changed[name] = true
		}
	}
	for name := range b {
		if a[name] == nil {
			changed[name] = true
		}
	}
	return changed
}
