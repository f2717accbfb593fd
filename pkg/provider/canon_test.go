package provider

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// contentKeyReference is ContentKey as it was first written, on encoding/json.
// Event ids stored by earlier versions come from it: ContentKey must agree
// with it on every input, keys and refusals alike.
func contentKeyReference(data []byte) (string, error) {
	canon, err := canonicalReference(data)
	if err != nil {
		return "", fmt.Errorf("canonical json: %w", err)
	}
	sum := sha256.Sum256(canon)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func canonicalReference(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// checkContentKey fails unless ContentKey and the reference agree on data:
// the same canonical bytes (compared first, for a readable failure), the
// same key, the same error.
func checkContentKey(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := canonicalReference(data)
	c := new(canon)
	got, gotErr := c.canonicalize(data)
	if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
		t.Fatalf("canonicalize(%q) error = %v; reference: %v", data, gotErr, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("canonicalize(%q) = %q; reference: %q", data, got, want)
	}
	key, err := ContentKey(data)
	refKey, refErr := contentKeyReference(data)
	if key != refKey || fmt.Sprint(err) != fmt.Sprint(refErr) {
		t.Fatalf("ContentKey(%q) = %q, %v; reference: %q, %v", data, key, err, refKey, refErr)
	}
}

// contentKeyCases are the corners of encoding/json's behaviour that the
// canonical form depends on.
var contentKeyCases = map[string]string{
	// Object members: sorted by decoded name, the last of equal names wins.
	"sorted":                  `{"a":1,"b":2}`,
	"unsorted":                `{"b":1,"a":2,"c":{"z":1,"y":2}}`,
	"one member":              `{"a":{"b":{"c":1}}}`,
	"empty object":            `{}`,
	"empty name":              `{"":1,"a":2," ":3}`,
	"name prefixes":           `{"ab":1,"a":2,"abc":3,"a\u0000":4}`,
	"escaped names sort raw":  `{"\u003c":1,";":2,"=":3,"A":4,"\\":5,"\"":6}`,
	"non-ASCII names":         `{"é":1,"z":2,"Z":3,"ü":4,"😀":5,"\uffff":6}`,
	"duplicate":               `{"a":1,"a":2}`,
	"duplicate escaped":       `{"a":1,"\u0061":2}`,
	"duplicate escaped first": `{"\u0061":1,"a":2}`,
	"duplicates spread":       `{"a":1,"b":2,"a":3,"c":4,"b":5,"a":6}`,
	"duplicate objects":       `{"a":{"x":1,"y":2},"a":{"y":3,"x":4}}`,
	"duplicate in order":      `{"a":1,"b":2,"b":3}`,
	"duplicates after U+FFFD": "{\"\xff\":1,\"\xfe\":2,\"\\ud800\":3,\"\uFFFD\":4}",
	"duplicate nested":        `{"o":{"k":1,"k":2},"p":[{"k":1,"k":[{"k":3,"j":4}]}]}`,
	"many members":            `{"j":1,"i":2,"h":3,"g":4,"f":5,"e":6,"d":7,"c":8,"b":9,"a":10,"k":11,"l":12,"m":13}`,
	"more than 24 members":    manyMembers(40),
	"long shared prefixes":    `{"chat_pic_full":1,"chat_pic":2,"chat_pi\u0063":3,"chat_pic_fulL":4,"chat_pic_ful":5}`,
	"NUL in names":            `{"a\u0000\u0000":1,"a":2,"a\u0000":3,"\u0000":4,"":5}`,
	"duplicate long names":    `{"timestamp_b":1,"timestamp_a":2,"timestamp_b":3,"timestamp":4,"timestamp_a":5}`,
	"duplicates, 23 members":  manyMembers(17),
	"duplicates, 25 members":  manyMembers(18),
	"short names at the end":  `{"b":{"d":1,"c":2},"a":{"\u0062":3,"a":4}}`,
	// Strings, re-escaped as json.Marshal escapes them.
	"HTML":                `["<>&","\u003c\u003e\u0026","a<b"]`,
	"line separators":     "[\"\u2028\u2029\",\"\\u2028\\u2029\",\"a\u2028b\"]",
	"short escapes":       `["\b\f\n\r\t","\"\\\/"]`,
	"control escapes":     `["\u0000\u0001\u001f","\u007f","\u0020"]`,
	"DEL raw":             "[\"\x7f\"]",
	"needless escapes":    `["\u0041\u00e9\u4e2d","\/"]`,
	"upper hex":           `["\u00E9\uD83D\uDE00\u00AB"]`,
	"surrogate pair":      `["\ud83d\ude00"]`,
	"lone high":           `["\ud83d","\ud83dx","\ud83d\u0041"]`,
	"lone low":            `["\ude00","\ude00\ud83d"]`,
	"high high low":       `["\ud83d\ud83d\ude00"]`,
	"high then escape":    `["\ud83d\n","\ud83d\\"]`,
	"raw non-ASCII":       `["é","中文","😀","ação"]`,
	"U+FFFD raw":          "[\"\uFFFD\"]",
	"invalid UTF-8":       "[\"\xff\",\"a\xfeb\",\"\xc3\",\"\xc3(\",\"\xe2\x82\"]",
	"encoded surrogate":   "[\"\xed\xa0\x80\"]",
	"overlong":            "[\"\xc0\xaf\",\"\xe0\x80\xaf\"]",
	"above U+10FFFF":      "[\"\xf4\x90\x80\x80\"]",
	"invalid with escape": "[\"\xff\\n\"]",
	"escaped name":        `{"a\nb":1,"<":2,"\u2028":3}`,
	"invalid UTF-8 name":  "{\"\xff\":1}",
	"long plain string":   `"` + strings.Repeat("abcdefgh", 100) + `"`,
	"long escaped string": `"` + strings.Repeat("a<b\\n", 100) + `"`,
	// Numbers keep their text.
	"numbers":        `[0,-0,1,-1,1.5,-1.50,1E5,1e5,1e-7,1E+2,0.10,1.0e0]`,
	"big integers":   `[123456789012345678901234567890,-99999999999999999999,18446744073709552000]`,
	"huge exponents": `[1e999,-1e-999,1.7976931348623157e309]`,
	// Literals and scalars at the top.
	"literals":      `[true,false,null]`,
	"top string":    `"x"`,
	"top number":    `42`,
	"top negative":  `-1.5e3`,
	"top true":      `true`,
	"top false":     `false`,
	"top null":      `null`,
	"empty array":   `[]`,
	"nested arrays": `[[],[[]],[{}],{"a":[]}]`,
	// White space anywhere, and nothing else.
	"white space":        " \t\r\n{ \"b\" : [ 1 , 2 ] ,\n\t\"a\" : { } } \n",
	"white space scalar": "\n\t 7 \r\n",
	"form feed":          "\f{}",
	"NBSP":               "\u00a0{}",
	"BOM":                "\ufeff{}",
	// What follows the first value is not read.
	"text after object":    `{} x`,
	"brace after object":   `{}}`,
	"bracket after array":  `[]]`,
	"second value":         `{"a":1}{"b":2}`,
	"number then number":   `1 2`,
	"number then letter":   `1x`,
	"leading zero":         `01`,
	"negative zero then":   `-01`,
	"fraction then dot":    `1.5.3`,
	"exponent then e":      `1e5e3`,
	"string then text":     `"a"b`,
	"string then quote":    `"a""`,
	"true then text":       `truex`,
	"null null":            `nullnull`,
	"comma after":          `1,`,
	"garbage after":        "[1]\xff\x00",
	"unterminated after":   `{} {`,
	"depth after":          `{}` + strings.Repeat("[", 10001),
	"top number then dot":  `1.`,
	"top number then e":    `1e`,
	"top number then sign": `1e+`,
	// Refused: nothing, truncated, or not JSON.
	"empty":              ``,
	"only space":         " \n\t",
	"open object":        `{`,
	"open name":          `{"a`,
	"name only":          `{"a"`,
	"name colon":         `{"a":`,
	"open member":        `{"a":1`,
	"open after comma":   `{"a":1,`,
	"open array":         `[`,
	"open element":       `[1`,
	"open array comma":   `[1,`,
	"open string":        `"abc`,
	"open escape":        `"\`,
	"open unicode":       `"\u12`,
	"open pair":          `"\ud83d\`,
	"open true":          `tru`,
	"open null":          `nul`,
	"open false":         `f`,
	"minus":              `-`,
	"missing colon":      `{"a" 1}`,
	"missing comma":      `{"a":1 "b":2}`,
	"comma first":        `{,}`,
	"trailing comma":     `{"a":1,}`,
	"array comma":        `[1,]`,
	"array comma first":  `[,1]`,
	"number name":        `{1:2}`,
	"single quotes":      `'a'`,
	"bad escape":         `"\x"`,
	"bad quote escape":   `"\'"`,
	"bad hex":            `"\u12g4"`,
	"bad hex in pair":    `"\ud83d\u12g4"`,
	"raw tab":            "\"a\tb\"",
	"raw newline":        "\"a\nb\"",
	"raw NUL":            "\"a\x00b\"",
	"leading zero array": `[01]`,
	"dot":                `.5`,
	"plus":               `+1`,
	"dot no digits":      `[1.]`,
	"dot exponent":       `1.e5`,
	"exponent no digits": `[1e]`,
	"exponent sign only": `[1e-]`,
	"minus letter":       `-x`,
	"NaN":                `NaN`,
	"Infinity":           `[Infinity]`,
	"bad true":           `tRue`,
	"bad null":           `nul1`,
	"bad false":          `fals`,
	"bad after name":     `{"a"}`,
	"bad after value":    `{"a":1]`,
	"bad after element":  `[1}`,
	"unquoted name":      `{a:1}`,
	"invalid first byte": "\xff",
	"quote char":         `{"a":1"`,
}

// manyMembers returns an object of n members in reverse order, a third of
// them named twice.
func manyMembers(n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := n; i > 0; i-- {
		fmt.Fprintf(&b, `"m%02d":%d,`, i, i)
		if i%3 == 0 {
			fmt.Fprintf(&b, `"m%02d":"again",`, n-i+1)
		}
	}
	b.WriteString(`"m00":0}`)
	return b.String()
}

func TestContentKeyMatchesReference(t *testing.T) {
	for name, give := range contentKeyCases {
		t.Run(name, func(t *testing.T) { checkContentKey(t, []byte(give)) })
	}
}

// The canonical forms themselves, for the rules above that matter most.
func TestCanonicalForm(t *testing.T) {
	for give, want := range map[string]string{
		`{"b":1,"a":2}`:                                `{"a":2,"b":1}`,
		`{"a":1,"\u0061":2}`:                           `{"a":2}`,
		`{"\u003c":1,"A":2}`:                           `{"\u003c":1,"A":2}`,
		`{"A":1,"\u003c":2}`:                           `{"\u003c":2,"A":1}`,
		`"<>&\u2028\/\u0041"`:                          `"\u003c\u003e\u0026\u2028/A"`,
		"\"\\b\\f\\u0001\\ud800\xff\"":                 "\"\\b\\f\\u0001\uFFFD\uFFFD\"",
		`[-0,1E5,1e-7,100000000000000000000000000001]`: `[-0,1E5,1e-7,100000000000000000000000000001]`,
		" {\n\"a\" : [ 1 , true ] } x":                 `{"a":[1,true]}`,
		`{}}`:                                          `{}`,
		`01`:                                           `0`,
	} {
		got, err := new(canon).canonicalize([]byte(give))
		if err != nil || string(got) != want {
			t.Errorf("canonicalize(%q) = %q, %v; want %q", give, got, err, want)
		}
	}
}

func TestContentKeyErrors(t *testing.T) {
	for give, want := range map[string]error{``: io.EOF, `{"a":`: io.ErrUnexpectedEOF} {
		if _, err := ContentKey([]byte(give)); !errors.Is(err, want) {
			t.Errorf("ContentKey(%q) error = %v; want %v", give, err, want)
		}
	}
}

// Nesting up to encoding/json's limit is read; one level more is refused.
func TestContentKeyDepth(t *testing.T) {
	// nest returns n levels: open repeated n-1 times around inner.
	nest := func(open, inner, close string, n int) string {
		return strings.Repeat(open, n-1) + inner + strings.Repeat(close, n-1)
	}
	for name, give := range map[string]string{
		"arrays at the limit":  nest("[", "[]", "]", maxNesting),
		"arrays over":          nest("[", "[]", "]", maxNesting+1),
		"objects at the limit": nest(`{"a":`, "{}", "}", maxNesting),
		"objects over":         nest(`{"a":`, "{}", "}", maxNesting+1),
		"mixed at the limit":   nest(`[{"b":0,"a":`, "[[]]", "}]", maxNesting/2),
		"mixed over":           nest(`[{"b":0,"a":`, "[[[]]]", "}]", maxNesting/2),
		"unclosed at limit":    strings.Repeat("[", maxNesting),
		"unclosed over":        strings.Repeat("[", maxNesting+1),
	} {
		t.Run(name, func(t *testing.T) { checkContentKey(t, []byte(give)) })
	}
}

// providerFixtures are the providers' documented payloads.
func providerFixtures(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("*/testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no provider fixtures: %v", err)
	}
	return files
}

// Every fixture and every value in it, compact, indented and as written.
func TestContentKeyFixtures(t *testing.T) {
	for _, file := range providerFixtures(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(file, func(t *testing.T) {
			eachValue(t, data, func(v []byte) {
				checkContentKey(t, v)
				var b bytes.Buffer
				if err := json.Compact(&b, v); err != nil {
					t.Fatal(err)
				}
				checkContentKey(t, b.Bytes())
				b.Reset()
				if err := json.Indent(&b, v, "", "\t"); err != nil {
					t.Fatal(err)
				}
				checkContentKey(t, b.Bytes())
			})
		})
	}
}

// eachValue calls fn with v and every value nested in it, as written.
func eachValue(t *testing.T, v []byte, fn func([]byte)) {
	t.Helper()
	fn(v)
	var obj map[string]json.RawMessage
	if json.Unmarshal(v, &obj) == nil {
		for _, m := range obj {
			eachValue(t, m, fn)
		}
		return
	}
	var arr []json.RawMessage
	if json.Unmarshal(v, &arr) == nil {
		for _, e := range arr {
			eachValue(t, e, fn)
		}
	}
}

// FuzzContentKey compares ContentKey with the reference on any bytes. The
// seed corpus in testdata holds the providers' documented payloads and their
// items, and the cases above as they were first written; the cases are added
// here too, so that new ones are seeds at once.
func FuzzContentKey(f *testing.F) {
	for _, give := range contentKeyCases {
		f.Add([]byte(give))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, wantErr := contentKeyReference(data)
		got, err := ContentKey(data)
		if got != want || fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("ContentKey(%q) = %q, %v; reference: %q, %v", data, got, err, want, wantErr)
		}
	})
}

// whapiChat is a chat as Whapi sends it in chats_updates (the fields of the
// Chat schema in its order; the last message as in messages.post fixtures).
func whapiChat(mute bool, labels string) string {
	return `{"id":"919984351847@s.whatsapp.net","name":"Jonathan Almeida","type":"contact","timestamp":1747059575,` +
		`"chat_pic":"https://pps.whatsapp.net/v/t61.24694-24/491860553_1002196068752837_n.jpg?ccb=11-4&oh=01_Q5Aa1gH&oe=6830A1B2",` +
		`"chat_pic_full":"https://pps.whatsapp.net/v/t61.24694-24/491860553_1002196068752837_n.jpg?stp=dst-jpg_s640x640&ccb=11-4&oh=01_Q5Aa1gH&oe=6830A1B2",` +
		fmt.Sprintf(`"pin":false,"mute":%t,"mute_until":18446744073709552000,"archive":false,"unread":2,"unread_mention":false,"read_only":false,"not_spam":true,`, mute) +
		`"last_message":{"id":"p.w30M7fgwWD4XwHu.g4CA-gBgTwl0rVw","from_me":false,"type":"text","chat_id":"919984351847@s.whatsapp.net","timestamp":1747059575,"source":"mobile",` +
		`"text":{"body":"Olá! O pagamento do pedido 4512 já foi feito, segue o comprovante. Quando sai a entrega? Obrigado 🙏"},"from":"919984351847","from_name":"Jonathan Almeida"},` +
		`"labels":` + labels + `}`
}

// contentKeyBenchItems are items identified by their content: a Whapi chat
// update (about 1.9 KB) and label, and a Z-API edited message callback.
func contentKeyBenchItems(tb testing.TB) []struct {
	name string
	data []byte
} {
	const before = `[{"id":"3","name":"Pending payment","color":"salmon"}]`
	const after = `[{"id":"3","name":"Pending payment","color":"salmon"},{"id":"5","name":"Paid","color":"lightgreen"}]`
	update := `{"before_update":` + whapiChat(false, before) + `,"after_update":` + whapiChat(true, after) +
		`,"changes":["last_message","labels","mute","mute_until"]}`
	zapi, err := os.ReadFile(filepath.Join("zapi", "testdata", "ReceivedCallback_text.json"))
	if err != nil {
		tb.Fatal(err)
	}
	zapi = bytes.Replace(zapi, []byte(`"isEdit": false`), []byte(`"isEdit": true`), 1)
	var compact bytes.Buffer
	if err := json.Compact(&compact, zapi); err != nil {
		tb.Fatal(err)
	}
	return []struct {
		name string
		data []byte
	}{
		{"whapi_chats_update", []byte(update)},
		{"whapi_label", []byte(`{"id":"76","name":"Order complete","color":"lightsteelblue"}`)},
		{"zapi_callback", compact.Bytes()},
	}
}

func TestContentKeyBenchItems(t *testing.T) {
	for _, item := range contentKeyBenchItems(t) {
		t.Run(item.name, func(t *testing.T) { checkContentKey(t, item.data) })
	}
}

func BenchmarkContentKey(b *testing.B) {
	for _, item := range contentKeyBenchItems(b) {
		for _, impl := range []struct {
			name string
			fn   func([]byte) (string, error)
		}{{"new", ContentKey}, {"reference", contentKeyReference}} {
			b.Run(item.name+"/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(len(item.data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := impl.fn(item.data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestPrefixOf holds the one-load prefix to namePrefix for names of every
// length near 8, in the input and decoded, at the end of their buffer or not.
func TestPrefixOf(t *testing.T) {
	for n := 0; n <= 10; n++ {
		name := strings.Repeat("\xffa", n)[:n]
		for _, tail := range []string{"", "z", "zzzzzzzzz"} {
			c := &canon{in: []byte(`"` + name + tail), keys: []byte(name + tail)}
			for _, inKeys := range []bool{false, true} {
				m := member{name: 1, nameEnd: 1 + n, inKeys: inKeys}
				if inKeys {
					m.name, m.nameEnd = 0, n
				}
				if got, want := c.prefixOf(m), namePrefix([]byte(name)); got != want {
					t.Errorf("name %q, tail %q, in keys %v: prefix %x, want %x", name, tail, inKeys, got, want)
				}
			}
		}
	}
}
