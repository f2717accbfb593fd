package provider

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestUnix(t *testing.T) {
	sec := time.Date(2024, 4, 13, 8, 0, 45, 0, time.UTC) // 1712995245
	tests := []struct {
		name string
		give string
		want time.Time
		ok   bool
	}{
		{"whapi message seconds", `1712995245`, sec, true},
		{"whapi status string seconds", `"1712995245"`, sec, true},
		{"whapi call milliseconds", `1712995245000`, sec, true},
		{"zapi momment milliseconds", `1712995245123`, sec.Add(123 * time.Millisecond), true},
		{"string milliseconds", `"1712995245000"`, sec, true},
		{"microseconds", `1712995245000000`, sec, true},
		{"nanoseconds", `1712995245000000000`, sec, true},
		{"fractional seconds", `1712995245.5`, sec.Add(500 * time.Millisecond), true},
		{"exponent", `1.712995245e9`, sec, true},
		{"null", `null`, time.Time{}, false},
		{"empty", ``, time.Time{}, false},
		{"zero", `0`, time.Time{}, false},
		{"negative", `-5`, time.Time{}, false},
		{"text", `"soon"`, time.Time{}, false},
		{"object", `{}`, time.Time{}, false},
		{"whapi mute_until overflow", `18446744073709552000`, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Unix(json.RawMessage(tt.give))
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Errorf("Unix(%s) = %v, %v; want %v, %v", tt.give, got, ok, tt.want, tt.ok)
			}
			if ok && got.Location() != time.UTC {
				t.Errorf("Unix(%s) location = %v; want UTC", tt.give, got.Location())
			}
		})
	}
}

func TestText(t *testing.T) {
	for give, want := range map[string]string{
		`"76"`: "76", `76`: "76", ` 3 `: "3", `null`: "", `{"a":1}`: "", `true`: "", `"a\"b"`: `a"b`,
	} {
		if got := Text(json.RawMessage(give)); got != want {
			t.Errorf("Text(%s) = %q; want %q", give, got, want)
		}
	}
}

func TestContentKeyIgnoresLayout(t *testing.T) {
	a, err := ContentKey([]byte(`{"b":1,"a":{"y":[1,2],"x":"é"}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ContentKey([]byte("{\n  \"a\": {\"x\": \"\\u00e9\", \"y\": [1, 2]},\n  \"b\": 1\n}"))
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("ContentKey differs for the same JSON laid out differently: %s vs %s", a, b)
	}
	c, _ := ContentKey([]byte(`{"b":2,"a":{"y":[1,2],"x":"é"}}`))
	if c == a {
		t.Errorf("ContentKey is the same for different JSON")
	}
	if _, err := ContentKey([]byte(`{`)); err == nil {
		t.Errorf("ContentKey({) = nil error; want one")
	}
}

func TestEventID(t *testing.T) {
	it := Item{Kind: "messages.post", Channel: "MANTIS-M72HC", Key: "p.w30M7fgwWD4XwHu.g4CA-gBgTwl0rVw", Data: []byte(`{}`)}
	a, _ := EventID("whapi", it)
	b, _ := EventID("whapi", it)
	if a != b || len(a) != 32 {
		t.Fatalf("EventID not deterministic or not 32 hex chars: %q %q", a, b)
	}
	for name, other := range map[string]Item{
		"kind":    {Kind: "statuses.post", Channel: it.Channel, Key: it.Key},
		"channel": {Kind: it.Kind, Channel: "OTHER", Key: it.Key},
		"key":     {Kind: it.Kind, Channel: it.Channel, Key: "x"},
	} {
		if id, _ := EventID("whapi", other); id == a {
			t.Errorf("EventID equal with a different %s", name)
		}
	}
	if id, _ := EventID("zapi", it); id == a {
		t.Errorf("EventID equal for another provider")
	}
	// Parts are delimited: shifting text between them changes the id.
	x, _ := EventID("whapi", Item{Kind: "ab", Channel: "c", Key: "k"})
	y, _ := EventID("whapi", Item{Kind: "a", Channel: "bc", Key: "k"})
	if x == y {
		t.Errorf("EventID parts are not delimited")
	}
	if _, err := EventID("whapi", Item{Kind: "x", Data: []byte(`nope`)}); err == nil {
		t.Errorf("EventID with no key and invalid data = nil error; want one")
	}
}

func TestCheckRouteDefault(t *testing.T) {
	var p Provider = plain{}
	if err := CheckRoute(p, "POST", nil); err != nil {
		t.Errorf("POST = %v; want nil", err)
	}
	if err := CheckRoute(p, "PUT", nil); !errors.Is(err, ErrMethod) {
		t.Errorf("PUT = %v; want ErrMethod", err)
	}
	if err := CheckRoute(p, "POST", []string{"x"}); !errors.Is(err, ErrNoRoute) {
		t.Errorf("POST /x = %v; want ErrNoRoute", err)
	}
}
