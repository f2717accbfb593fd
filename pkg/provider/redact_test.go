package provider

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestRemoveMember(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		n        int
	}{
		{`{"k":1}`, `{}`, 1},
		{` {"a":"x","k":{"k":[1,"}"]},"b":true} `, ` {"a":"x","b":true} `, 1},
		{"{\n  \"a\": 1,\n  \"k\": \"s\"\n}", "{\n  \"a\": 1\n}", 1},
		{"{\n  \"k\": \"s\",\n  \"a\": 1\n}", "{\n  \"a\": 1\n}", 1},
		{`{"K":1,"a":2,"\u006b":3}`, `{"a":2}`, 2},
		{`{"kk":1,"a":{"k":2}}`, `{"kk":1,"a":{"k":2}}`, 0},
		{`[{"k":1}]`, `[{"k":1}]`, 0},
		{`"k"`, `"k"`, 0},
		{`{"k":"v"`, `{"k":""`, 1},
	} {
		got, n := RemoveMember([]byte(tc.in), "k")
		if string(got) != tc.want || n != tc.n {
			t.Errorf("RemoveMember(%s) = %s, %d; want %s, %d", tc.in, got, n, tc.want, tc.n)
		}
	}
}

// FuzzRemoveMember: valid JSON stays valid and equal to the input less the
// member as encoding/json reads it; nothing panics on any input.
func FuzzRemoveMember(f *testing.F) {
	for _, s := range []string{`{"apikey":"k","a":1}`, `{"a":[{"apikey":1}],"APIKEY":null}`, `{"apikey":"x"`, `{}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		valid := json.Valid(in)
		out, _ := RemoveMember(bytes.Clone(in), "apikey")
		if !valid {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("RemoveMember(%q) = %q, not valid JSON", in, out)
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(bytes.TrimSpace(in), &m) != nil || m == nil {
			if !bytes.Equal(in, out) {
				t.Fatalf("RemoveMember(%q) changed a non-object: %q", in, out)
			}
			return
		}
		var got struct {
			APIKey json.RawMessage `json:"apikey"`
		}
		if err := json.Unmarshal(out, &got); err != nil || got.APIKey != nil {
			t.Fatalf("RemoveMember(%q) = %q still has an apikey for encoding/json", in, out)
		}
	})
}
