package ofrep

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// reference decodes as encoding/json does, taking the member named exactly
// "context" (encoding/json would also take "Context").
func reference(body []byte) (map[string]any, bool) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, false
	}
	raw, ok := top["context"]
	if !ok || len(bytes.TrimSpace(raw)) == 0 || bytes.TrimSpace(raw)[0] != '{' {
		return nil, false
	}
	var ec map[string]any
	if err := json.Unmarshal(raw, &ec); err != nil {
		return nil, false
	}
	return ec, true
}

var decodeSeeds = []string{
	`{"context":{}}`,
	`{"context":{"targetingKey":"u1","plan":"pro","n":1.5e3,"neg":-0,"b":true,"z":null,"l":[1,"a",[],{}]}}`,
	` { "a" : [ 1 , 2 ] , "context" : { "k" : "v" } } `,
	`{"context":{"s":"\u00e9\ud83d\ude00\n\t\"\\\/ \ud800 x"}}`,
	`{"context":{"bad":"` + "\xff\xfe" + `"}}`,
	`{"context":{"a":1},"context":{"b":2}}`,
	`{"context":{"a":1},"context":null}`,
	`{"context":[]}`, `{"context":"x"}`, `{}`, `[]`, ``, `{"context":{}} x`,
	`{"context":{"n":1e999}}`, `{"context":{"n":01}}`, `{"context":{"n":1.}}`, `{"context":{"n":-}}`,
	`{"context":{"s":"a` + "\x01" + `"}}`, `{"context":{"s":"\x"}}`, `{"context":{"a":tru}}`,
	`{"context":{"a":1,}}`, `{"context":{,}}`, `{"context":{"a" 1}}`, `{"context":{"a":[1,]}}`,
}

func TestParseContextMatchesEncodingJSON(t *testing.T) {
	for _, s := range decodeSeeds {
		checkDecode(t, []byte(s))
	}
	deep := `{"context":{"a":` + strings.Repeat("[", maxDepth+5) + strings.Repeat("]", maxDepth+5) + `}}`
	if _, err := parseContext([]byte(deep)); err == nil {
		t.Fatal("values nested beyond maxDepth were accepted")
	}
}

func checkDecode(t *testing.T, body []byte) {
	t.Helper()
	if bytes.Count(body, []byte("["))+bytes.Count(body, []byte("{")) > maxDepth-2 {
		return // may exceed our nesting bound, which encoding/json does not have
	}
	want, wantOK := reference(body)
	got, err := parseContext(body)
	if (err == nil) != wantOK {
		t.Fatalf("parseContext(%q): err = %v, encoding/json ok = %v", body, err, wantOK)
	}
	if wantOK && !reflect.DeepEqual(got, want) {
		t.Fatalf("parseContext(%q) = %#v, encoding/json gives %#v", body, got, want)
	}
}

func FuzzParseContext(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 512 {
			return
		}
		checkDecode(t, body)
	})
}
