package provider

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidJSON(t *testing.T) {
	for _, s := range []string{
		``, ` `, `{}`, `[]`, `{`, `}`, `[`, `]`, `{]`, `[}`, `{"a":1}`, `{"a":1,}`, `{"a" 1}`, `{"a":}`, `{1:2}`,
		`{"a":1 "b":2}`, `[1,2,3]`, `[1,,2]`, `[,1]`, `[1 2]`, ` [ 1 , { "x" : [ ] } ] `, `"x"`, `"`, `"\"`,
		`"\u00e9"`, `"\u00g9"`, `"\u00e"`, `"\x"`, `"a\tb"`, "\"a\tb\"", "\"\x7f\xff\"", "\"a\nb\"",
		`0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.5e10`, `1.5.2`, `+1`,
		`true`, `false`, `null`, `tru`, `truex`, `nul`, `True`, `true false`, `nulll`, "\t\r\n1\n",
		`{"a":{"b":{"c":[1,{"d":null}]}}}`, `{"a":1}}`, `[[]]]`,
	} {
		if got, want := ValidJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("ValidJSON(%q) = %v, encoding/json says %v", s, got, want)
		}
	}
}

// TestValidJSONDepth: nesting up to encoding/json's limit is valid, one
// level more is not.
func TestValidJSONDepth(t *testing.T) {
	for _, n := range []int{maxJSONDepth - 1, maxJSONDepth, maxJSONDepth + 1} {
		for _, open := range []string{"[", `{"a":`} {
			close := map[string]string{"[": "]", `{"a":`: "}"}[open]
			s := []byte(strings.Repeat(open, n) + "1" + strings.Repeat(close, n))
			if got, want := ValidJSON(s), json.Valid(s); got != want {
				t.Errorf("ValidJSON(%d times %s) = %v, encoding/json says %v", n, open, got, want)
			}
		}
	}
}

// FuzzValidJSON holds ValidJSON to encoding/json.Valid's verdict. The seed
// corpus is in testdata/fuzz/FuzzValidJSON, with every fixture beside it.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,-2.5e3,"x\u00e9",true,null]}`, `[{}]`, `"\"`, `01`, `{"a" 1}`} {
		f.Add([]byte(s))
	}
	if dirs, err := filepath.Glob(filepath.Join("..", "..", "..", "shared", "fixtures", "*")); err == nil {
		for _, d := range dirs {
			files, _ := filepath.Glob(filepath.Join(d, "*.json"))
			for _, p := range files {
				if b, err := os.ReadFile(p); err == nil {
					f.Add(b)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := ValidJSON(data), json.Valid(data); got != want {
			t.Fatalf("ValidJSON(%q) = %v, encoding/json says %v", data, got, want)
		}
	})
}

// BenchmarkValidJSON: the items of BenchmarkContentKey, and a whole Whapi
// delivery of one, as the ingress checks it.
func BenchmarkValidJSON(b *testing.B) {
	items := contentKeyBenchItems(b)
	whole, err := os.ReadFile(filepath.Join("whapi", "testdata", "chats.patch_label-assigned.json"))
	if err != nil {
		b.Fatal(err)
	}
	{
		items = append(items, struct {
			name string
			data []byte
		}{"whapi-delivery", whole})
	}
	for _, item := range items {
		for _, impl := range []struct {
			name  string
			valid func([]byte) bool
		}{{"new", ValidJSON}, {"encoding-json", json.Valid}} {
			b.Run(item.name+"/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(len(item.data)))
				b.ReportAllocs()
				for b.Loop() {
					if !impl.valid(item.data) {
						b.Fatal("invalid")
					}
				}
			})
		}
	}
}
