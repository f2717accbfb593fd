package jsonscan_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/wahook/wahook/pkg/provider/jsonscan"
)

// listDiff is "" when want and got are equal, else both.
func listDiff(want, got []string) string {
	if slices.Equal(want, got) {
		return ""
	}
	return fmt.Sprintf("want %q\ngot  %q", want, got)
}

func TestScanner(t *testing.T) {
	const obj = ` { "a" : [1, {"b":"}"}, "x\"]"] , "c\u0064":null,"e":-1.5e3 ,"f":{"g":[[]]}, "h":"\u00e9\n" } `
	var keys []string
	var vals []string
	for k, v := range jsonscan.Members([]byte(obj)) {
		keys = append(keys, string(k))
		vals = append(vals, string(v))
	}
	if diff := listDiff([]string{"a", "cd", "e", "f", "h"}, keys); diff != "" {
		t.Errorf("members keys (-want +got):\n%s", diff)
	}
	if diff := listDiff([]string{`[1, {"b":"}"}, "x\"]"]`, `null`, `-1.5e3`, `{"g":[[]]}`, `"\u00e9\n"`}, vals); diff != "" {
		t.Errorf("members values (-want +got):\n%s", diff)
	}
	var els []string
	for el := range jsonscan.Elements([]byte(vals[0])) {
		els = append(els, string(el))
	}
	if diff := listDiff([]string{`1`, `{"b":"}"}`, `"x\"]"`}, els); diff != "" {
		t.Errorf("elements (-want +got):\n%s", diff)
	}
	if got := jsonscan.String([]byte(vals[4])); got != "é\n" {
		t.Errorf("str = %q", got)
	}
	if got := jsonscan.String([]byte("\"a\xffb\"")); got != "a\uFFFDb" {
		t.Errorf("str of invalid UTF-8 = %q", got)
	}
	if got := jsonscan.Text([]byte(vals[2])); got != "-1.5e3" {
		t.Errorf("text = %q", got)
	}
	for range jsonscan.Members([]byte(`[1]`)) {
		t.Error("members of an array yielded")
	}
	for range jsonscan.Elements([]byte(`{}`)) {
		t.Error("elements of an object yielded")
	}
}

func TestMembers(t *testing.T) {
	obj := []byte(` { "a" : 1 , "b\u0021":[1, {"x":"}"}], "c":"q\"}" ,"a": null , "d":{} } `)
	var got []string
	for k, v := range jsonscan.Members(obj) {
		got = append(got, string(k)+"="+string(v))
	}
	want := []string{`a=1`, `b!=[1, {"x":"}"}]`, `c="q\"}"`, `a=null`, `d={}`}
	if !slices.Equal(got, want) {
		t.Errorf("members %q, want %q", got, want)
	}
	if v := jsonscan.Lookup(obj, "a"); string(v) != "null" {
		t.Errorf("Lookup a = %s, want the last one, null", v)
	}
	if v := jsonscan.Lookup(obj, "A"); v != nil {
		t.Errorf("Lookup A = %s, want nil: keys match exactly", v)
	}
	var f [3][]byte
	jsonscan.Pick(obj, f[:], "c", "d", "zz")
	if string(f[0]) != `"q\"}"` || string(f[1]) != "{}" || f[2] != nil {
		t.Errorf("Pick = %q", f)
	}
	for _, v := range []string{``, `[]`, `"x"`, `1`, `{}`, ` {  } `} {
		for k := range jsonscan.Members([]byte(v)) {
			t.Errorf("Members(%s) has member %s", v, k)
		}
	}
}

func TestElements(t *testing.T) {
	var got []string
	for v := range jsonscan.Elements([]byte(` [ 1 ,"a,]", [ ], {"k":[2]} ,true] `)) {
		got = append(got, string(v))
	}
	want := []string{`1`, `"a,]"`, `[ ]`, `{"k":[2]}`, `true`}
	if !slices.Equal(got, want) {
		t.Errorf("elements %q, want %q", got, want)
	}
	for _, v := range []string{``, `[]`, `[ ]`, `{"a":1}`, `"x"`} {
		for e := range jsonscan.Elements([]byte(v)) {
			t.Errorf("Elements(%s) has element %s", v, e)
		}
	}
}

func TestScalars(t *testing.T) {
	for v, want := range map[string]string{
		`"plain"`: "plain", `"\u00e9\n"`: "é\n", "\"\xff\"": "\ufffd", `12.5`: "12.5", `-3`: "-3",
		`true`: "", `null`: "", `{}`: "", ``: "", ` "x" `: "x",
	} {
		if got := jsonscan.Text([]byte(v)); got != want {
			t.Errorf("Text(%s) = %q, want %q", v, got, want)
		}
	}
	if got := jsonscan.String([]byte(`12`)); got != "" {
		t.Errorf("String(12) = %q, want empty", got)
	}
	for v, want := range map[string][2]bool{
		`true`: {true, true}, `"true"`: {true, true}, `false`: {false, true}, `"false"`: {false, true},
		`1`: {false, false}, `null`: {false, false}, `"yes"`: {false, false},
	} {
		if b, ok := jsonscan.Bool([]byte(v)); b != want[0] || ok != want[1] {
			t.Errorf("Bool(%s) = %v, %v, want %v", v, b, ok, want)
		}
	}
	for v, want := range map[string]float64{`1.5`: 1.5, `" 2 "`: 2, `-1e3`: -1000} {
		if f, ok := jsonscan.Number([]byte(v)); !ok || f != want {
			t.Errorf("Number(%s) = %v, %v, want %v", v, f, ok, want)
		}
	}
	for _, v := range []string{`"x"`, `null`, `true`, `""`} {
		if f, ok := jsonscan.Number([]byte(v)); ok {
			t.Errorf("Number(%s) = %v, want none", v, f)
		}
	}
	if !jsonscan.Absent(nil) || !jsonscan.Absent([]byte("null")) || jsonscan.Absent([]byte(`""`)) {
		t.Error("Absent: want true for nothing and null only")
	}
}

func TestTooDeep(t *testing.T) {
	for _, tc := range []struct {
		v    string
		max  int
		deep bool
	}{
		{`[[[]]]`, 3, false}, {`[[[]]]`, 2, true}, {`{"a":{"b":"[[[["}}`, 2, false}, {`{"a":[{}]}`, 2, true}, {`1`, 0, false},
	} {
		if got := jsonscan.TooDeep([]byte(tc.v), tc.max); got != tc.deep {
			t.Errorf("TooDeep(%s, %d) = %v, want %v", tc.v, tc.max, got, tc.deep)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	obj := []byte(`{"id":"ABC","chat_id":"1@s.whatsapp.net","n":12,"list":[1,2,{"a":"b"}],"ok":true}`)
	allocs := testing.AllocsPerRun(100, func() {
		var f [3][]byte
		jsonscan.Pick(obj, f[:], "id", "chat_id", "ok")
		for e := range jsonscan.Elements(jsonscan.Lookup(obj, "list")) {
			_ = jsonscan.First(e)
		}
		_, _ = jsonscan.Bool(f[2])
		_ = jsonscan.TooDeep(obj, 2)
	})
	if allocs != 0 {
		t.Errorf("%v allocations, want none", allocs)
	}
}

// memberIter is Members as a struct with a Next method, the other form the
// package could offer: BenchmarkMembers compares the two.
type memberIter struct {
	b          []byte
	i          int
	key, value []byte
}

func structMembers(obj []byte) memberIter {
	i := jsonscan.SkipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return memberIter{i: -1}
	}
	return memberIter{b: obj, i: i + 1}
}

func (m *memberIter) next() bool {
	b, i := m.b, m.i
	if i < 0 {
		return false
	}
	m.i = -1
	i = jsonscan.SkipSpace(b, i)
	if i < len(b) && b[i] == ',' {
		i = jsonscan.SkipSpace(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		return false
	}
	ke := jsonscan.StringEnd(b, i)
	if ke-1 <= i {
		return false
	}
	key := b[i+1 : ke-1]
	if bytes.IndexByte(key, '\\') >= 0 {
		key = []byte(jsonscan.String(b[i:ke]))
	}
	i = jsonscan.SkipSpace(b, ke)
	if i >= len(b) || b[i] != ':' {
		return false
	}
	i = jsonscan.SkipSpace(b, i+1)
	ve := jsonscan.ValueEnd(b, i)
	m.key, m.value, m.i = key, b[i:ve], ve
	return true
}

var benchObj = []byte(`{"id":"3EB0C767D71D8B2E8F2A","from_me":false,"type":"text","chat_id":"919984351847@s.whatsapp.net","timestamp":1712995581,"source":"mobile","text":{"body":"Hello there, how are you?"},"from":"919984351847","from_name":"Alice"}`)

func BenchmarkMembers(b *testing.B) {
	b.Run("struct", func(b *testing.B) {
		for b.Loop() {
			n := 0
			for m := structMembers(benchObj); m.next(); {
				if string(m.key) == "chat_id" {
					n += len(m.value)
				}
			}
		}
	})
	b.Run("seq2", func(b *testing.B) {
		for b.Loop() {
			n := 0
			for k, v := range jsonscan.Members(benchObj) {
				if string(k) == "chat_id" {
					n += len(v)
				}
			}
		}
	})
}

// benchDelivery is a delivery with an array member, the shape Fields is
// used on.
var benchDelivery = []byte(`{"messages":[` + string(benchObj) + `,` + string(benchObj) + `],"event":{"type":"messages","event":"post"},"channel_id":"MANTIS-M72HC"}`)

func BenchmarkFields(b *testing.B) {
	for b.Loop() {
		n := 0
		for k, f := range jsonscan.Fields(benchDelivery) {
			if string(k) == "messages" {
				n += f.Len
			}
		}
		if n != 2 {
			b.Fatalf("Fields(messages).Len = %d, want 2", n)
		}
	}
}
