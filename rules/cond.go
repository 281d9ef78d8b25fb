package rules

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// ErrNoTargetingKey is reported when a rollout (percent or bucket) is
// evaluated without a targeting key: the rule does not match.
var ErrNoTargetingKey = errors.New("rules: targeting key missing")

// Target is the evaluation context: the targeting key that sticky rollouts
// hash, and attributes that conditions read by name. It is immutable once
// made and safe for concurrent use.
type Target struct {
	key   string
	attrs map[string]any
	env   map[string]any // attrs plus targetingKey, what conditions see
	large []string       // names in env too large for conditions to read
}

// NewTarget returns a Target. The attributes are copied; "targetingKey" is
// always key, whatever attrs says. Attributes larger than conditions may
// read (MaxAttrString, MaxAttrText, MaxAttrValues) are kept, and noted:
// a condition that reads one fails with ErrAttrTooLarge instead of running.
func NewTarget(key string, attrs map[string]any) *Target {
	env := make(map[string]any, len(attrs)+1)
	var large []string
	for k, v := range attrs {
		env[k] = v
		if k != "targetingKey" && !attrFits(v) {
			large = append(large, k)
		}
	}
	env["targetingKey"] = key
	if len(key) > MaxAttrString {
		large = append(large, "targetingKey")
	}
	if len(env) > MaxAttrValues {
		large = append(large, envName)
	}
	return &Target{key: key, attrs: attrs, env: env, large: large}
}

// NewTargetOwned is NewTarget without the copy, for callers that built
// attrs for this Target alone (a decoded request): attrs becomes the
// Target's, with "targetingKey" set to key, and must not be modified
// afterwards.
func NewTargetOwned(key string, attrs map[string]any) *Target {
	if attrs == nil {
		attrs = make(map[string]any, 1)
	}
	if k, ok := attrs["targetingKey"].(string); !ok || k != key {
		attrs["targetingKey"] = key
	}
	var large []string
	for k, v := range attrs {
		if k != "targetingKey" && !attrFits(v) {
			large = append(large, k)
		}
	}
	if len(key) > MaxAttrString {
		large = append(large, "targetingKey")
	}
	if len(attrs) > MaxAttrValues {
		large = append(large, envName)
	}
	return &Target{key: key, attrs: attrs, env: attrs, large: large}
}

var emptyTarget = NewTarget("", nil)

// Key returns the targeting key; "" for a nil Target.
func (t *Target) Key() string {
	if t == nil {
		return ""
	}
	return t.key
}

// Attrs returns the attributes the Target was made with. Do not modify.
func (t *Target) Attrs() map[string]any {
	if t == nil {
		return nil
	}
	return t.attrs
}

// Buckets is the number of rollout buckets: bucket() is in [0, Buckets).
const Buckets = 10000

// Hash is the rollout hash of key under salt: 64-bit FNV-1a over the bytes
// of salt, ":" and key, then MurmurHash3's 64-bit finaliser (fmix64), of
// which the high 32 bits are kept. It depends on nothing else, so a key
// lands in the same place in every process, machine and release; the
// finaliser spreads similar keys (user-1, user-2) evenly.
func Hash(salt, key string) uint32 {
	h := uint64(fnvOffset)
	for i := 0; i < len(salt); i++ {
		h ^= uint64(salt[i])
		h *= fnvPrime
	}
	h ^= ':'
	h *= fnvPrime
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= fnvPrime
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return uint32(h >> 32)
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// Bucket returns key's bucket under salt: floor(Hash × 10000 / 2³²), in
// [0, Buckets).
func Bucket(salt, key string) int { return int(uint64(Hash(salt, key)) * Buckets >> 32) }

// InPercent reports whether key is in the first p percent under salt:
// Hash < ceil(p × 2³² / 100). Raising p only adds keys, and
// InPercent(salt, key, b/100) equals Bucket(salt, key) < b.
func InPercent(salt, key string, p float64) bool {
	return uint64(Hash(salt, key)) < percentThreshold(p)
}

func percentThreshold(p float64) uint64 {
	switch {
	case !(p > 0): // also NaN
		return 0
	case p >= 100:
		return 1 << 32
	}
	return uint64(math.Ceil(p * (1 << 32) / 100))
}

// Condition is a compiled rule condition. Conditions that are only a
// rollout (percent(P), bucket() < N and the like) are evaluated without the
// expression VM.
type Condition struct {
	text    string
	salt    string
	rollout bool // uses percent() or bucket()

	// native forms
	kind   condKind
	thresh uint64 // condPercent
	op     string // condBucket: <, <=, >, >=, ==, !=
	n      int    // condBucket

	program  *vm.Program // condExpr
	names    []string    // attributes the expression reads, sorted
	readsAll bool        // it reads $env
	cost     int64       // worst-case cost in units (cost.go)
}

type condKind uint8

const (
	condExpr condKind = iota
	condPercent
	condBucket
)

// Bounds on conditions: the node count at compile time, and the memory a
// single evaluation may allocate (in expr's units).
const (
	MaxConditionNodes = 500
	conditionMemory   = 10000
)

var vms = sync.Pool{New: func() any { return &vm.VM{MemoryBudget: conditionMemory} }}

// disabledBuiltins are every expr builtin but the allowed ones, so the
// compiler itself knows no other.
var disabledBuiltins = func() map[string]bool {
	m := make(map[string]bool)
	for _, f := range builtin.Builtins {
		if !allowedBuiltins[f.Name] {
			m[f.Name] = true
		}
	}
	return m
}()

// disableBuiltins is expr.DisableAllBuiltins and EnableBuiltin for each
// allowed one, without filling a map for every compile (a fifth of a
// save's time): expr only reads Config.Disabled, so one map is shared.
func disableBuiltins(c *conf.Config) { c.Disabled = disabledBuiltins }

// CompileCondition compiles an expr-lang condition. Names are the targeting
// key (targetingKey) and the attributes; a missing attribute is nil. The
// rollout functions percent(p[, salt]) and bucket([salt]) hash the
// targeting key with salt (the flag name unless given).
//
// Conditions are a sandbox (see sandbox.go and docs/rule-format.md): only
// expressions whose cost is linear in their size and in the size of what
// they read are accepted. let, ";", ranges, closures, builtins that loop or
// build values and builtins that read the clock are refused with an
// ErrCondition naming the construct; the compiled program is checked to be
// straight-line code.
func CompileCondition(text, salt string) (*Condition, error) {
	if err := validCondition(text); err != nil {
		return nil, err
	}
	if text == "" {
		return nil, errorf(ErrCondition, "empty condition")
	}
	c := &Condition{text: text, salt: salt}
	tree, err := parser.Parse(text)
	if err != nil {
		return nil, errorf(ErrCondition, "bad condition: %s", firstLine(err))
	}
	sb, err := checkCondition(tree.Node)
	if err != nil {
		return nil, err
	}
	c.names, c.readsAll = sb.names(), sb.all
	if c.cost, err = conditionCost(tree.Node, salt); err != nil {
		return nil, err
	}
	c.native(tree.Node)
	if c.program, err = c.compile(); err != nil {
		return nil, err
	}
	return c, nil
}

// compile compiles c's text to a program and checks the program, whatever
// the expression checker said: only the allowed builtins exist, and the
// program must be straight-line code (checkProgram).
func (c *Condition) compile() (*vm.Program, error) {
	program, err := expr.Compile(c.text,
		expr.Env(map[string]any{}),
		expr.AllowUndefinedVariables(),
		expr.AsBool(),
		expr.MaxNodes(MaxConditionNodes),
		expr.Function("percent", c.percentFunc),
		expr.Function("bucket", c.bucketFunc),
		expr.Patch(keyArg{c: c}),
		disableBuiltins,
	)
	if err != nil {
		return nil, errorf(ErrCondition, "bad condition: %s", firstLine(err))
	}
	if err := checkProgram(program); err != nil {
		return nil, err
	}
	return program, nil
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// keyArg appends targetingKey to every percent() and bucket() call, so the
// functions see the key without the author writing it.
type keyArg struct{ c *Condition }

func (k keyArg) Visit(node *ast.Node) {
	call, ok := (*node).(*ast.CallNode)
	if !ok {
		return
	}
	if id, ok := call.Callee.(*ast.IdentifierNode); ok && (id.Value == "percent" || id.Value == "bucket") {
		k.c.rollout = true
		call.Arguments = append(call.Arguments, &ast.IdentifierNode{Value: "targetingKey"})
	}
}

// impure builtins are disabled: a condition's answer depends only on the
// evaluation context.
var impure = map[string]bool{"now": true, "date": true, "timezone": true, "duration": true}

// native recognises a condition that is only a rollout.
func (c *Condition) native(n ast.Node) {
	if p, salt, ok := percentCall(n); ok && p >= 0 && p <= 100 {
		c.kind, c.thresh, c.rollout = condPercent, percentThreshold(p), true
		if salt != "" {
			c.salt = salt
		}
		return
	}
	bin, ok := n.(*ast.BinaryNode)
	if !ok {
		return
	}
	switch bin.Operator {
	case "<", "<=", ">", ">=", "==", "!=":
	default:
		return
	}
	salt, ok := bucketCall(bin.Left)
	num, isInt := bin.Right.(*ast.IntegerNode)
	if !ok || !isInt {
		return
	}
	c.kind, c.op, c.n, c.rollout = condBucket, bin.Operator, num.Value, true
	if salt != "" {
		c.salt = salt
	}
}

func percentCall(n ast.Node) (p float64, salt string, ok bool) {
	call, ok := n.(*ast.CallNode)
	if !ok {
		return 0, "", false
	}
	if id, isID := call.Callee.(*ast.IdentifierNode); !isID || id.Value != "percent" || len(call.Arguments) < 1 || len(call.Arguments) > 2 {
		return 0, "", false
	}
	switch a := call.Arguments[0].(type) {
	case *ast.IntegerNode:
		p = float64(a.Value)
	case *ast.FloatNode:
		p = a.Value
	default:
		return 0, "", false
	}
	if len(call.Arguments) == 2 {
		s, isStr := call.Arguments[1].(*ast.StringNode)
		if !isStr || s.Value == "" {
			return 0, "", false
		}
		salt = s.Value
	}
	return p, salt, true
}

func bucketCall(n ast.Node) (salt string, ok bool) {
	call, ok := n.(*ast.CallNode)
	if !ok {
		return "", false
	}
	if id, isID := call.Callee.(*ast.IdentifierNode); !isID || id.Value != "bucket" || len(call.Arguments) > 1 {
		return "", false
	}
	if len(call.Arguments) == 1 {
		s, isStr := call.Arguments[0].(*ast.StringNode)
		if !isStr || s.Value == "" {
			return "", false
		}
		salt = s.Value
	}
	return salt, true
}

// percentFunc implements percent(p[, salt]) inside the VM; the patch adds
// the targeting key as the last argument.
func (c *Condition) percentFunc(params ...any) (any, error) {
	if len(params) < 2 || len(params) > 3 {
		return nil, errors.New("percent(p) or percent(p, salt)")
	}
	var p float64
	switch v := params[0].(type) {
	case int:
		p = float64(v)
	case float64:
		p = v
	default:
		return nil, fmt.Errorf("percent: p must be a number, not %T", params[0])
	}
	if !(p >= 0 && p <= 100) {
		return nil, fmt.Errorf("percent: p must be between 0 and 100, not %v", p)
	}
	salt, err := c.saltArg(params[1 : len(params)-1])
	if err != nil {
		return nil, err
	}
	key, _ := params[len(params)-1].(string)
	if key == "" {
		return false, nil
	}
	return InPercent(salt, key, p), nil
}

// bucketFunc implements bucket([salt]).
func (c *Condition) bucketFunc(params ...any) (any, error) {
	if len(params) < 1 || len(params) > 2 {
		return nil, errors.New("bucket() or bucket(salt)")
	}
	salt, err := c.saltArg(params[:len(params)-1])
	if err != nil {
		return nil, err
	}
	key, _ := params[len(params)-1].(string)
	if key == "" {
		return nil, ErrNoTargetingKey
	}
	return Bucket(salt, key), nil
}

func (c *Condition) saltArg(p []any) (string, error) {
	if len(p) == 0 {
		return c.salt, nil
	}
	s, ok := p[0].(string)
	if !ok || s == "" {
		return "", errors.New("salt must be a non-empty string")
	}
	return s, nil
}

// String returns the condition's text.
func (c *Condition) String() string { return c.text }

// Rollout reports whether the condition uses percent() or bucket().
func (c *Condition) Rollout() bool { return c.rollout }

// Native reports whether the condition is evaluated without the VM.
func (c *Condition) Native() bool { return c.kind != condExpr }

// Match evaluates the condition for t (nil: no key, no attributes). A
// run-time error means no match and is returned; so is ErrNoTargetingKey
// when a rollout could not be decided for want of a key.
func (c *Condition) Match(t *Target) (bool, error) {
	if t == nil {
		t = emptyTarget
	}
	switch c.kind {
	case condPercent:
		if t.key == "" {
			return false, ErrNoTargetingKey
		}
		return uint64(Hash(c.salt, t.key)) < c.thresh, nil
	case condBucket:
		if t.key == "" {
			return false, ErrNoTargetingKey
		}
		b := Bucket(c.salt, t.key)
		switch c.op {
		case "<":
			return b < c.n, nil
		case "<=":
			return b <= c.n, nil
		case ">":
			return b > c.n, nil
		case ">=":
			return b >= c.n, nil
		case "==":
			return b == c.n, nil
		default:
			return b != c.n, nil
		}
	}
	if len(t.large) > 0 {
		for _, name := range t.large {
			if c.readsAll || slices.Contains(c.names, name) {
				return false, fmt.Errorf("rules: condition %q: %w: %q holds more than %d values, a string longer than %d bytes or more than %d bytes of text",
					c.text, ErrAttrTooLarge, name, MaxAttrValues, MaxAttrString, MaxAttrText)
			}
		}
	}
	m := vms.Get().(*vm.VM)
	out, err := m.Run(c.program, t.env)
	vms.Put(m)
	if err != nil || out != true {
		if c.rollout && t.key == "" {
			return false, ErrNoTargetingKey
		}
		if err != nil {
			return false, fmt.Errorf("rules: condition %q: %s", c.text, firstLine(err))
		}
	}
	return out == true, nil
}
