package rules

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/vm"
)

// Conditions are a sandbox: CompileCondition accepts only expressions whose
// cost is linear in their own size and in the size of what they read, and
// Target bounds what they read. The rule, in full, is in
// docs/rule-format.md; in short:
//
//   - no let, no ";", no ranges (..), no closures or #, no functions that
//     loop or build values (all, map, filter, reduce, sort, repeat, join,
//     ...): a condition is one expression that reads attributes, compares
//     them and calls cheap builtins, each once;
//   - + needs a number on one side, so conditions never build strings;
//   - matches takes a pattern literal, of at most MaxPatternInsts regexp
//     instructions in all, and reads an attribute (or a literal) directly;
//   - a condition reads attributes of at most MaxAttrString bytes a
//     string, MaxAttrText bytes of text and MaxAttrValues values: a Target
//     holding a larger one makes the conditions that read it fail.
//
// The compiled program is then checked again, independently of the
// expression: it may use only straight-line opcodes (no loops, no backward
// jumps, no variables, no reflective calls) and is at most
// maxConditionOps instructions long, so every instruction runs at most
// once.

// Limits on what a condition may read and run.
const (
	// MaxAttrString bounds one string a condition reads (an attribute, an
	// element of one, or the targeting key), in bytes.
	MaxAttrString = 4096
	// MaxAttrText bounds the bytes of all the strings (map keys included)
	// of one attribute a condition reads.
	MaxAttrText = 16384
	// MaxAttrValues bounds the values in one attribute a condition reads:
	// the attribute itself and every element, map entry and struct field
	// in it, at any depth (at most maxAttrDepth levels).
	MaxAttrValues = 1000
	// MaxPatternInsts bounds the regexp instructions of all the patterns
	// of one condition together (^[a-z0-9._%+-]+@example\.com$ is 25).
	MaxPatternInsts = 100

	// MaxAdditions bounds the + of one condition. + never joins strings
	// (one side must be a number); the bound keeps a string that slipped
	// through small all the same.
	MaxAdditions = 32
	// MaxCopies bounds the calls of upper, lower and replace of one
	// condition: each copies a string, up to three times its size.
	MaxCopies = 8

	maxAttrDepth = 16
	maxCutset    = 16
	// maxConditionOps bounds the compiled program: an accepted condition
	// of MaxConditionNodes nodes compiles to fewer instructions.
	maxConditionOps = 4 * MaxConditionNodes
)

// ErrAttrTooLarge is reported when a condition reads an attribute larger
// than the limits above: the rule does not match.
var ErrAttrTooLarge = errors.New("rules: attribute too large for a condition")

// Builtins a condition may call. Each costs at most linear time in its
// arguments and returns a value no larger than a small multiple of them
// (replace and trim with literal arguments: see builtin).
var allowedBuiltins = map[string]bool{
	"len": true, "abs": true, "ceil": true, "floor": true, "round": true,
	"int": true, "float": true, "type": true,
	"trim": true, "trimPrefix": true, "trimSuffix": true, "upper": true, "lower": true,
	"hasPrefix": true, "hasSuffix": true, "indexOf": true, "lastIndexOf": true, "replace": true,
	"max": true, "min": true, "first": true, "last": true, "get": true,
	"bitand": true, "bitor": true, "bitxor": true, "bitnand": true, "bitnot": true,
	"bitshl": true, "bitshr": true, "bitushr": true,
}

var copies = map[string]bool{"upper": true, "lower": true, "replace": true}

// numericBuiltins return numbers (or fail).
var numericBuiltins = map[string]bool{
	"len": true, "abs": true, "ceil": true, "floor": true, "round": true, "int": true, "float": true,
	"indexOf": true, "lastIndexOf": true, "max": true, "min": true,
	"bitand": true, "bitor": true, "bitxor": true, "bitnand": true, "bitnot": true,
	"bitshl": true, "bitshr": true, "bitushr": true,
}

// Why the other builtins are refused, when there is more to say than that
// they are not on the list.
var refusedBuiltins = map[string]string{
	"sort":   "sort() sorts, which costs more than linear time; conditions may not sort",
	"median": "median() sorts, which costs more than linear time; conditions may not sort",
	"repeat": "repeat() builds a string larger than its input; conditions may not build strings",
	"join":   "join() builds a string from a list; conditions may not build strings",
	"concat": "concat() builds a list; conditions may not build lists",
	"string": "string() formats any value, however large; compare values directly (numbers with numbers)",
	"split":  "split() builds a list; test the string with contains, hasPrefix or matches instead",
}

// allowedBinary are the binary operators a condition may use; + and
// matches have further rules.
var allowedBinary = map[string]bool{
	"or": true, "||": true, "and": true, "&&": true,
	"==": true, "!=": true, "<": true, ">": true, "<=": true, ">=": true,
	"in": true, "contains": true, "startsWith": true, "endsWith": true, "matches": true,
	"+": true, "-": true, "*": true, "/": true, "%": true, "**": true, "^": true, "??": true,
}

// sandbox is the allow-list over a condition's expression tree. ast.Walk
// visits children before their parent, so the last offence found is the
// outermost: the construct the author wrote (let, all, ...) rather than
// something inside it. A clock builtin is always reported as such.
type sandbox struct {
	err    error
	clock  bool
	reads  map[string]int // identifiers and how often they occur
	all    bool           // reads $env: every attribute
	insts  int            // regexp instructions of the patterns
	adds   int            // + operators
	copies int            // upper, lower and replace calls
}

func (s *sandbox) refuse(format string, args ...any) {
	if !s.clock {
		s.err = errorf(ErrCondition, "bad condition: "+format, args...)
	}
}

// names returns the attributes the condition reads, sorted.
func (s *sandbox) names() []string {
	var l []string
	for name, n := range s.reads {
		if n > 0 {
			l = append(l, name)
		}
	}
	slices.Sort(l)
	return l
}

func (s *sandbox) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.NilNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.StringNode, *ast.BytesNode,
		*ast.ChainNode, *ast.SliceNode, *ast.ConditionalNode, *ast.ArrayNode, *ast.MapNode, *ast.PairNode:
	case *ast.IdentifierNode:
		if n.Value == "$env" {
			s.all = true
		} else {
			s.reads[n.Value]++
		}
	case *ast.UnaryNode:
		switch n.Operator {
		case "!", "not", "-", "+":
		default:
			s.refuse("unary %s is not allowed in conditions", n.Operator)
		}
	case *ast.BinaryNode:
		s.binary(n)
	case *ast.MemberNode:
		if n.Method {
			s.refuse("method calls are not allowed in conditions")
		}
	case *ast.CallNode:
		s.call(n)
	case *ast.BuiltinNode:
		s.builtin(n)
	case *ast.VariableDeclaratorNode:
		s.refuse("let is not allowed in conditions")
	case *ast.SequenceNode:
		s.refuse("; is not allowed in conditions: a condition is one expression")
	case *ast.PredicateNode:
		s.refuse("closures are not allowed in conditions: conditions may not loop")
	case *ast.PointerNode:
		s.refuse("# is not allowed in conditions: conditions may not loop")
	default:
		s.refuse("%T is not allowed in conditions", n)
	}
}

func (s *sandbox) binary(n *ast.BinaryNode) {
	switch {
	case n.Operator == "..":
		s.refuse("ranges (..) are not allowed in conditions: a range is a list as long as its numbers say")
	case !allowedBinary[n.Operator]:
		s.refuse("operator %s is not allowed in conditions", n.Operator)
	case n.Operator == "+" && !numeric(n.Left) && !numeric(n.Right):
		s.refuse("+ needs a number on one side: conditions may not join strings (to add two attributes, write float(a) + b)")
	case n.Operator == "+":
		if s.adds++; s.adds > MaxAdditions {
			s.refuse("a condition may use + at most %d times", MaxAdditions)
		}
	case n.Operator == "matches":
		s.matches(n)
	}
}

// matches allows "X matches LITERAL" where X reads an attribute (or is a
// literal), so the text is at most MaxAttrString bytes and the pattern is
// compiled once.
func (s *sandbox) matches(n *ast.BinaryNode) {
	lit, ok := n.Right.(*ast.StringNode)
	if !ok {
		s.refuse("matches needs a string literal pattern")
		return
	}
	if !reads(n.Left) {
		s.refuse("matches reads an attribute directly: write name matches \"pattern\" (for a case-insensitive match, start the pattern with (?i))")
		return
	}
	re, err := syntax.Parse(lit.Value, syntax.Perl)
	if err != nil {
		s.refuse("bad pattern %q: %v", lit.Value, err)
		return
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		s.refuse("bad pattern %q: %v", lit.Value, err)
		return
	}
	if s.insts += len(prog.Inst); s.insts > MaxPatternInsts {
		s.refuse("the patterns of a condition may compile to at most %d regexp instructions in all (these need %d or more)", MaxPatternInsts, s.insts)
	}
}

// reads reports whether n is a literal or reads an attribute, or part of
// one, without computing anything.
func reads(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.StringNode, *ast.NilNode:
		return true
	case *ast.IdentifierNode:
		return n.Value != "$env"
	case *ast.MemberNode:
		return !n.Method && (reads(n.Node) || isEnv(n.Node))
	case *ast.ChainNode:
		return reads(n.Node)
	}
	return false
}

func isEnv(n ast.Node) bool {
	id, ok := n.(*ast.IdentifierNode)
	return ok && id.Value == "$env"
}

// numeric reports whether n is surely a number, or an error: + with a
// number on one side never joins strings.
func numeric(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.IntegerNode, *ast.FloatNode:
		return true
	case *ast.UnaryNode:
		return n.Operator == "-" || (n.Operator == "+" && numeric(n.Node))
	case *ast.BinaryNode:
		switch n.Operator {
		case "-", "*", "/", "%", "**", "^":
			return true
		case "+":
			return numeric(n.Left) || numeric(n.Right)
		}
	case *ast.BuiltinNode:
		return numericBuiltins[n.Name]
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		return ok && id.Value == "bucket"
	case *ast.ConditionalNode:
		return numeric(n.Exp1) && numeric(n.Exp2)
	}
	return false
}

func (s *sandbox) call(n *ast.CallNode) {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		if m, isMember := n.Callee.(*ast.MemberNode); isMember && m.Method {
			return // reported by the MemberNode
		}
		s.refuse("only builtin functions, percent and bucket may be called in conditions")
		return
	}
	s.reads[id.Value]-- // the callee is not an attribute the condition reads
	switch {
	case id.Value == "percent" || id.Value == "bucket":
	case impure[id.Value]:
		s.clockErr(id.Value)
	case isBuiltin(id.Value):
		s.refuseBuiltin(id.Value)
	default:
		s.refuse("unknown function %s()", id.Value)
	}
	if p, _, ok := percentCall(n); ok && !(p >= 0 && p <= 100) {
		s.refuse("percent(%v): p must be between 0 and 100", p)
	}
}

func isBuiltin(name string) bool {
	_, ok := builtin.Index[name]
	return ok || slices.Contains(predicateBuiltins, name)
}

// predicateBuiltins take a closure: each loops over a list.
var predicateBuiltins = []string{"all", "none", "any", "one", "filter", "map", "find", "findIndex", "findLast",
	"findLastIndex", "count", "sum", "groupBy", "sortBy", "reduce"}

func (s *sandbox) builtin(n *ast.BuiltinNode) {
	if copies[n.Name] {
		if s.copies++; s.copies > MaxCopies {
			s.refuse("upper(), lower() and replace() copy their argument: a condition may call them at most %d times in all", MaxCopies)
			return
		}
	}
	switch {
	case impure[n.Name]:
		s.clockErr(n.Name)
	case n.Name == "replace":
		s.checkReplace(n)
	case n.Name == "trim" && len(n.Arguments) == 2:
		// strings.Trim costs len(s) × len(cutset) for a non-ASCII cutset.
		if c, ok := n.Arguments[1].(*ast.StringNode); !ok || len(c.Value) > maxCutset {
			s.refuse("trim(s, cutset) needs a string literal cutset of at most %d bytes", maxCutset)
		}
	case allowedBuiltins[n.Name]:
	default:
		s.refuseBuiltin(n.Name)
	}
}

func (s *sandbox) clockErr(name string) {
	s.err = errorf(ErrCondition, "bad condition: %s() reads the clock; pass the time as an attribute instead", name)
	s.clock = true
}

func (s *sandbox) refuseBuiltin(name string) {
	switch why, ok := refusedBuiltins[name]; {
	case ok:
		s.refuse("%s", why)
	case slices.Contains(predicateBuiltins, name):
		s.refuse("%s() loops; conditions may not loop", name)
	default:
		s.refuse("%s() is not allowed in conditions (allowed: %s)", name, strings.Join(allowedList, ", "))
	}
}

var allowedList = func() []string {
	var l []string
	for name := range allowedBuiltins {
		l = append(l, name+"()")
	}
	slices.Sort(l)
	return l
}()

// checkReplace allows replace(s, "old", "new") with a non-empty literal
// old and a literal new no longer than old: the result is no longer than s.
func (s *sandbox) checkReplace(n *ast.BuiltinNode) {
	if len(n.Arguments) == 3 {
		old, ok1 := n.Arguments[1].(*ast.StringNode)
		repl, ok2 := n.Arguments[2].(*ast.StringNode)
		if ok1 && ok2 && old.Value != "" && len(repl.Value) <= len(old.Value) {
			return
		}
	}
	s.refuse("replace(s, old, new) needs string literals old and new, old not empty and new no longer than old (replace(phone, \"-\", \"\")), so the result is no longer than s")
}

// checkCondition applies the allow-list to the parsed expression.
func checkCondition(tree ast.Node) (*sandbox, error) {
	s := &sandbox{reads: map[string]int{}}
	ast.Walk(&tree, s)
	return s, s.err
}

// straightLine are the opcodes an accepted condition's program may hold:
// none loops, jumps backwards, stores variables or calls by reflection.
var straightLine = func() [vm.OpEnd + 1]bool {
	var ok [vm.OpEnd + 1]bool
	for _, op := range []vm.Opcode{
		vm.OpPush, vm.OpInt, vm.OpPop, vm.OpLoadConst, vm.OpLoadField, vm.OpLoadFast, vm.OpLoadEnv, vm.OpLoadFunc,
		vm.OpFetch, vm.OpFetchField, vm.OpTrue, vm.OpFalse, vm.OpNil, vm.OpNegate, vm.OpNot,
		vm.OpEqual, vm.OpEqualInt, vm.OpEqualString,
		vm.OpJump, vm.OpJumpIfTrue, vm.OpJumpIfFalse, vm.OpJumpIfNil, vm.OpJumpIfNotNil,
		vm.OpIn, vm.OpLess, vm.OpMore, vm.OpLessOrEqual, vm.OpMoreOrEqual,
		vm.OpAdd, vm.OpSubtract, vm.OpMultiply, vm.OpDivide, vm.OpModulo, vm.OpExponent,
		vm.OpMatchesConst, vm.OpContains, vm.OpStartsWith, vm.OpEndsWith, vm.OpSlice,
		vm.OpCall0, vm.OpCall1, vm.OpCall2, vm.OpCall3, vm.OpCallN, vm.OpCallFast, vm.OpCallSafe, vm.OpCallBuiltin1,
		vm.OpArray, vm.OpMap, vm.OpLen, vm.OpCast, vm.OpDeref, vm.OpThrow, vm.OpAnd, vm.OpOr,
	} {
		ok[op] = true
	}
	return ok
}()

// checkProgram checks the compiled program independently of the
// expression: straight-line opcodes only, forward jumps only, bounded
// length, and only constant regexps no larger than the patterns allow.
// Every instruction then runs at most once.
func checkProgram(p *vm.Program) error {
	if len(p.Bytecode) > maxConditionOps {
		return errorf(ErrCondition, "bad condition: compiles to %d instructions, more than %d", len(p.Bytecode), maxConditionOps)
	}
	insts, adds := 0, 0
	for i, op := range p.Bytecode {
		if int(op) >= len(straightLine) || !straightLine[op] {
			return errorf(ErrCondition, "bad condition: compiles to a %s instruction, which conditions may not use", opName(op))
		}
		switch op {
		case vm.OpAdd:
			if adds++; adds > MaxAdditions {
				return errorf(ErrCondition, "bad condition: compiles to more than %d additions", MaxAdditions)
			}
		case vm.OpCallBuiltin1:
			if a := p.Arguments[i]; a < 0 || a >= len(builtin.Builtins) || !allowedBuiltins[builtin.Builtins[a].Name] {
				return errorf(ErrCondition, "bad condition: compiles to a call of a builtin conditions may not use")
			}
		case vm.OpJump, vm.OpJumpIfTrue, vm.OpJumpIfFalse, vm.OpJumpIfNil, vm.OpJumpIfNotNil:
			if p.Arguments[i] < 0 {
				return errorf(ErrCondition, "bad condition: compiles to a backward jump")
			}
		}
	}
	for _, c := range p.Constants {
		if re, ok := c.(*regexp.Regexp); ok {
			insts += regexpInsts(re)
		}
	}
	if insts > MaxPatternInsts {
		return errorf(ErrCondition, "bad condition: its patterns compile to %d regexp instructions, more than %d", insts, MaxPatternInsts)
	}
	return nil
}

func regexpInsts(re *regexp.Regexp) int {
	r, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return MaxPatternInsts + 1
	}
	prog, err := syntax.Compile(r.Simplify())
	if err != nil {
		return MaxPatternInsts + 1
	}
	return len(prog.Inst)
}

func opName(op vm.Opcode) string {
	names := map[vm.Opcode]string{
		vm.OpJumpBackward: "loop (OpJumpBackward)", vm.OpBegin: "loop (OpBegin)", vm.OpRange: "range (OpRange)",
		vm.OpStore: "variable (OpStore)", vm.OpLoadVar: "variable (OpLoadVar)", vm.OpCall: "reflective call (OpCall)",
		vm.OpMethod: "method (OpMethod)", vm.OpLoadMethod: "method (OpLoadMethod)", vm.OpMatches: "run-time regexp (OpMatches)",
	}
	if n, ok := names[op]; ok {
		return n
	}
	return fmt.Sprintf("opcode %d", op)
}

// envName stands for the whole environment in Target.large: a Target
// with more than MaxAttrValues attributes is too large for a condition
// that reads $env.
const envName = "$env"

// attrFits reports whether v is within the limits a condition may read.
func attrFits(v any) bool {
	var z attrSize
	return z.add(v, 0)
}

type attrSize struct{ text, values int }

func (z *attrSize) str(n int) bool {
	z.text += n
	return n <= MaxAttrString && z.text <= MaxAttrText
}

func (z *attrSize) add(v any, depth int) bool {
	z.values++
	if z.values > MaxAttrValues || depth > maxAttrDepth {
		return false
	}
	switch v := v.(type) {
	case nil, bool, int, int64, float64, int32, uint, uint64, float32:
		return true
	case string:
		return z.str(len(v))
	case []byte:
		return z.str(len(v))
	case []string:
		if z.values+len(v) > MaxAttrValues {
			return false
		}
		z.values += len(v)
		for _, s := range v {
			if !z.str(len(s)) {
				return false
			}
		}
		return true
	case []any:
		if z.values+len(v) > MaxAttrValues {
			return false
		}
		for _, e := range v {
			if !z.add(e, depth+1) {
				return false
			}
		}
		return true
	case map[string]any:
		if z.values+len(v) > MaxAttrValues {
			return false
		}
		for k, e := range v {
			if !z.str(len(k)) || !z.add(e, depth+1) {
				return false
			}
		}
		return true
	}
	return z.reflect(reflect.ValueOf(v), depth)
}

func (z *attrSize) reflect(v reflect.Value, depth int) bool {
	switch v.Kind() {
	case reflect.String:
		return z.str(v.Len())
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return z.str(v.Len())
		}
		if z.values+v.Len() > MaxAttrValues {
			return false
		}
		for i := range v.Len() {
			if !z.value(v.Index(i), depth+1) {
				return false
			}
		}
	case reflect.Map:
		if z.values+v.Len() > MaxAttrValues {
			return false
		}
		for it := v.MapRange(); it.Next(); {
			if !z.value(it.Key(), depth+1) || !z.value(it.Value(), depth+1) {
				return false
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			if t.Field(i).IsExported() && !z.value(v.Field(i), depth+1) {
				return false
			}
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return z.value(v.Elem(), depth+1)
		}
	}
	return true
}

func (z *attrSize) value(v reflect.Value, depth int) bool {
	if v.CanInterface() {
		return z.add(v.Interface(), depth)
	}
	z.values++
	return z.values <= MaxAttrValues && depth <= maxAttrDepth && z.reflect(v, depth)
}
