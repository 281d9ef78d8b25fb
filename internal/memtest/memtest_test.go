package memtest

import (
	"encoding/json"
	"testing"
)

func TestLargeDoc(t *testing.T) {
	doc := LargeDoc(100_000)
	if len(doc) < 100_000 || len(doc) > 100_200 {
		t.Fatalf("LargeDoc(100000) is %d bytes", len(doc))
	}
	var v []map[string]string
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	if n := Allocated(func() { json.Unmarshal([]byte(doc), &v) }); n < uint64(len(doc)) {
		t.Fatalf("decoding %d bytes allocated %d: want at least the text", len(doc), n)
	}
}
