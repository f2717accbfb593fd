package jsonscan_test

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/wahook/wahook/pkg/provider/jsonscan"
)

// FuzzScan holds the scanner to encoding/json on valid input: the same
// members (last of equal keys), elements, strings, numbers, booleans and
// depth. Invalid input only must not panic.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":[true,false,null,"x\"y"],"a":{"c":"\u00e9"}}`,
		` [ {"k" : -1.5e3 } , "s" ] `,
		`"\ud83d\ude00 \\ \/"`,
		`{"event":{"type":"messages","event":"post"},"messages":[{"id":"A","chat_id":"1@s.whatsapp.net","timestamp":1712995581}],"channel_id":"C"}`,
		`{"k\u0000":"v","":{}}`,
		`[[[[]]],{}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Whatever the input, nothing panics.
		jsonscan.TooDeep(data, 3)
		for _, v := range jsonscan.Members(data) {
			jsonscan.Text(v)
		}
		// The appending forms read what String and Text read.
		if a, b := string(jsonscan.AppendString([]byte("x"), data)), "x"+jsonscan.String(data); a != b {
			t.Fatalf("AppendString = %q, want %q", a, b)
		}
		if a, b := string(jsonscan.AppendText(nil, data)), jsonscan.Text(data); a != b {
			t.Fatalf("AppendText = %q, want %q", a, b)
		}
		// Fields yields what Members does, with arrays' lengths.
		var keys [][]byte
		var vals [][]byte
		for k, v := range jsonscan.Members(data) {
			keys, vals = append(keys, k), append(vals, v)
		}
		n := 0
		for k, f := range jsonscan.Fields(data) {
			if n >= len(keys) || !bytes.Equal(k, keys[n]) || !bytes.Equal(f.Value, vals[n]) {
				t.Fatalf("Fields member %d = %q: %q, Members says otherwise", n, k, f.Value)
			}
			if jsonscan.First(f.Value) != '[' && f.Len != 0 {
				t.Fatalf("Fields Len of %q = %d, want 0", f.Value, f.Len)
			}
			n++
		}
		if n != len(keys) {
			t.Fatalf("Fields yields %d members, Members %d", n, len(keys))
		}
		for v := range jsonscan.Elements(data) {
			jsonscan.Number(v)
		}
		jsonscan.ValueEnd(data, jsonscan.SkipSpace(data, 0))
		if !json.Valid(data) {
			return
		}
		v := jsonscan.Trim(data)
		if end := jsonscan.ValueEnd(v, 0); end != len(v) {
			t.Fatalf("ValueEnd = %d, want %d", end, len(v))
		}
		d := check(t, v)
		if jsonscan.TooDeep(v, d) || d > 0 && !jsonscan.TooDeep(v, d-1) {
			t.Fatalf("TooDeep wrong about depth %d", d)
		}
	})
}

// check compares what the scanner reads of the valid value v with what
// encoding/json decodes, and returns v's nesting depth.
func check(t *testing.T, v []byte) int {
	t.Helper()
	switch jsonscan.First(v) {
	case '{':
		var want map[string]json.RawMessage
		if err := json.Unmarshal(v, &want); err != nil {
			t.Fatal(err)
		}
		got := map[string][]byte{}
		mended := map[string]bool{} // names Lookup cannot find as decoded
		for k, mv := range jsonscan.Members(v) {
			if !utf8.Valid(k) {
				// encoding/json replaces invalid UTF-8 in names; the
				// scanner keeps names without escapes as they are.
				k = []byte(jsonscan.String(append(append([]byte{'"'}, k...), '"')))
				mended[string(k)] = true
			}
			got[string(k)] = mv
		}
		if len(got) != len(want) {
			t.Fatalf("%d members, want %d", len(got), len(want))
		}
		depth := 0
		for k, w := range want {
			g, ok := got[k]
			if !ok || !bytes.Equal(g, w) {
				t.Fatalf("member %q = %s, want %s", k, g, w)
			}
			if lv := jsonscan.Lookup(v, k); !mended[k] && !bytes.Equal(lv, w) {
				t.Fatalf("Lookup %q = %s, want %s", k, lv, w)
			}
		}
		// Every member, also one a later duplicate hides, counts for depth.
		for _, mv := range jsonscan.Members(v) {
			depth = max(depth, check(t, mv))
		}
		return depth + 1
	case '[':
		var want []json.RawMessage
		if err := json.Unmarshal(v, &want); err != nil {
			t.Fatal(err)
		}
		// An array's length as Fields counts it, as a member's value.
		wrapped := append(append([]byte(`{"a":`), v...), '}')
		for _, f := range jsonscan.Fields(wrapped) {
			if f.Len != len(want) {
				t.Fatalf("Fields Len of %s = %d, want %d", v, f.Len, len(want))
			}
		}
		n, depth := 0, 0
		for e := range jsonscan.Elements(v) {
			if n >= len(want) || !bytes.Equal(e, want[n]) {
				t.Fatalf("element %d = %s", n, e)
			}
			depth = max(depth, check(t, e))
			n++
		}
		if n != len(want) {
			t.Fatalf("%d elements, want %d", n, len(want))
		}
		return depth + 1
	case '"':
		var want string
		if err := json.Unmarshal(v, &want); err != nil {
			t.Fatal(err)
		}
		if got := jsonscan.String(v); got != want {
			t.Fatalf("String(%s) = %q, want %q", v, got, want)
		}
	case 't', 'f':
		var want bool
		if err := json.Unmarshal(v, &want); err != nil {
			t.Fatal(err)
		}
		if got, ok := jsonscan.Bool(v); !ok || got != want {
			t.Fatalf("Bool(%s) = %v, %v", v, got, ok)
		}
	case 'n':
	default:
		want, err := strconv.ParseFloat(string(v), 64)
		got, ok := jsonscan.Number(v)
		if ok != (err == nil) || ok && got != want {
			t.Fatalf("Number(%s) = %v, %v", v, got, ok)
		}
		if got := jsonscan.Text(v); got != string(v) {
			t.Fatalf("Text(%s) = %q", v, got)
		}
	}
	return 0
}
