package provider

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

func BenchmarkEventID(b *testing.B) {
	keyed := Item{Kind: "messages.post", Channel: "MANTIS-M72HC", Key: "p.w30M7fgwWD4XwHu.g4CA-gBgTwl0rVw"}
	content := Item{Kind: "unknown", Channel: "MANTIS-M72HC", Data: []byte(`{"id":"76","name":"Order complete","color":"lightsteelblue"}`)}
	for name, it := range map[string]Item{"key": keyed, "content": content} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := EventID("whapi", it); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestSum(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, parts := range [][]string{{"a"}, {"a", "b"}, {"", ""}, {"a", long, "b"}, {long}, {long, ""}} {
		want := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
		if got := Sum(parts...); got != want {
			t.Errorf("Sum(%.20q) is not the SHA-256 of the parts joined by NUL", parts)
		}
		var bs [][]byte
		for _, p := range parts {
			bs = append(bs, []byte(p))
		}
		if got := Sum(bs...); got != want {
			t.Errorf("Sum of %.20q as bytes differs", parts)
		}
		if id := HashID(parts...); id != hex.EncodeToString(want[:16]) {
			t.Errorf("HashID(%.20q) = %s", parts, id)
		}
	}
	if n := testing.AllocsPerRun(50, func() { Sum("whapi", "C1", "messages.post", "ABC", "") }); n != 0 {
		t.Errorf("Sum of short parts: %v allocations, want none", n)
	}
}

// eventIDReference is EventID as first written: the content key made a
// string, then hashed with the other parts.
func eventIDReference(providerName string, it Item) (string, error) {
	key := it.Key
	if key == "" {
		k, err := ContentKey(it.Data)
		if err != nil {
			return "", err
		}
		key = k
	}
	return HashID(providerName, it.Channel, it.Kind, key, ""), nil
}

func FuzzEventID(f *testing.F) {
	f.Add("whapi", "MANTIS-M72HC", "chats.patch", "", []byte(`{"b":1,"a":[{"y":2,"x":3}]}`))
	f.Add("whapi", "C1", "messages.post", "ABC", []byte(`{}`))
	f.Add("zapi", strings.Repeat("c", 200), strings.Repeat("k.", 40), "", []byte(`"x"`))
	f.Add("waha", "C", "unknown", "", []byte(`{"a":`))
	f.Fuzz(func(t *testing.T, providerName, channel, kind, key string, data []byte) {
		it := Item{Channel: channel, Kind: kind, Key: key, Data: data}
		got, err := EventID(providerName, it)
		want, wantErr := eventIDReference(providerName, it)
		if got != want || fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("EventID(%q, %+v) = %q, %v; reference %q, %v", providerName, it, got, err, want, wantErr)
		}
	})
}
