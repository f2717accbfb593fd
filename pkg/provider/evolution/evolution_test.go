package evolution

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/provider"
)

func load(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

func fixtures(t testing.TB) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	return names
}

// item is an Item without its Data, for comparisons.
type item struct {
	Kind, Channel, Key, Chat string
	Time                     time.Time
}

func strip(items []provider.Item) []item {
	out := make([]item, len(items))
	for i, it := range items {
		out[i] = item{it.Kind, it.Channel, it.Key, it.Chat, it.Time}
	}
	return out
}

// TestSplitFixtures: each fixture (testdata/README.md says where each shape
// comes from) is one item, identified as the table says.
func TestSplitFixtures(t *testing.T) {
	const ch = "evo-sales"
	for name, want := range map[string]item{
		"messages.upsert.json": {KindMessagesUpsert, ch, "3EB0C4A1B2D3E4F5A6B7", "5511988887777@s.whatsapp.net",
			time.Unix(1749564201, 0).UTC()},
		"messages.upsert_outgoing-group.json": {KindMessagesUpsert, ch, "3EB0AA11BB22CC33DD44", "120363041234567890@g.us",
			time.Unix(1749564300, 0).UTC()},
		"messages.upsert_lid.json": {KindMessagesUpsert, ch, "3EB0D1E2F3A4B5C6D7E8", "5511977776666@s.whatsapp.net",
			time.Unix(1749564201, 0).UTC()},
		"messages.upsert_lid-only.json": {KindMessagesUpsert, ch, "3EB0E2F3A4B5C6D7E8F9", "27033333333333@lid",
			time.Unix(1749564301, 0).UTC()},
		"labels.edit.json":                       {KindLabelsEdit, ch, "", "", time.Time{}},
		"labels.edit_deleted.json":               {KindLabelsEdit, ch, "7/deleted", "", time.Time{}},
		"labels.association_add.json":            {KindLabelsAssociation, ch, "", "5511988887777@s.whatsapp.net", time.Time{}},
		"labels.association_remove.json":         {KindLabelsAssociation, ch, "", "5511988887777@s.whatsapp.net", time.Time{}},
		"call_offer.json":                        {KindCall, ch, "2B1C8F3E7D6A5B4C3D2E1F0A9B8C7D6E/offer", "5511988887777@s.whatsapp.net", time.Date(2025, 6, 10, 14, 15, 0, 0, time.UTC)},
		"call_timeout.json":                      {KindCall, ch, "2B1C8F3E7D6A5B4C3D2E1F0A9B8C7D6E/timeout", "5511988887777@s.whatsapp.net", time.Date(2025, 6, 10, 14, 15, 45, 0, time.UTC)},
		"call_terminate-video-lid.json":          {KindCall, ch, "9F8E7D6C5B4A39281706F5E4D3C2B1A0/terminate", "201234567890123@lid", time.Date(2025, 6, 10, 15, 0, 30, 0, time.UTC)},
		"groups.upsert.json":                     {KindGroupsUpsert, ch, "", "120363041234567890@g.us", time.Time{}},
		"groups.upsert_joined.json":              {KindGroupsUpsert, ch, "", "120363059876543210@g.us", time.Time{}},
		"groups.update.json":                     {KindGroupsUpdate, ch, "", "120363041234567890@g.us", time.Time{}},
		"group-participants.update_add.json":     {KindGroupParticipantsUpdate, ch, "", "120363041234567890@g.us", time.Time{}},
		"group-participants.update_leave.json":   {KindGroupParticipantsUpdate, ch, "", "120363041234567890@g.us", time.Time{}},
		"group-participants.update_promote.json": {KindGroupParticipantsUpdate, ch, "", "120363041234567890@g.us", time.Time{}},
		"chats.upsert.json":                      {KindChatsUpsert, ch, "", "5511933332222@s.whatsapp.net", time.Time{}},
		"chats.upsert_empty.json":                {KindChatsUpsert, ch, "", "", time.Time{}},
		"connection.update.json":                 {KindConnectionUpdate, ch, "", "", time.Time{}},
	} {
		t.Run(name, func(t *testing.T) {
			body := load(t, name)
			items, err := New().Split(body, provider.Delivery{Method: "POST"})
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			if diff := cmp.Diff([]item{want}, strip(items)); diff != "" {
				t.Errorf("Split(%s) mismatch (-want +got):\n%s", name, diff)
			}
			if !bytes.Equal(items[0].Data, body) {
				t.Errorf("Split(%s): Data is not the body", name)
			}
		})
	}
	if n := len(fixtures(t)); n != 20 {
		t.Errorf("%d fixtures, the table covers 20: add the new ones", n)
	}
}

// TestSplitByEvents: "webhook by events" names the event in the URL; the
// body's event wins, the URL's is used when the body has none.
func TestSplitByEvents(t *testing.T) {
	p := New()
	for _, tc := range []struct {
		name, body, segment, want string
	}{
		{"body wins", `{"event":"call","instance":"i","data":{}}`, "messages-upsert", KindCall},
		{"from the URL", `{"instance":"i","data":{}}`, "group-participants-update", KindGroupParticipantsUpdate},
		{"unknown suffix, body event", `{"event":"labels.edit","instance":"i","data":{}}`, "something-new", KindLabelsEdit},
		{"unknown event", `{"event":"brand.new","instance":"i","data":{}}`, "", provider.KindUnknown},
		{"odd event", `{"event":"a b>c","instance":"i","data":{}}`, "", provider.KindUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var segs []string
			if tc.segment != "" {
				segs = []string{tc.segment}
			}
			items, err := p.Split([]byte(tc.body), provider.Delivery{Method: "POST", Segments: segs})
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			if items[0].Kind != tc.want {
				t.Errorf("kind = %q, want %q", items[0].Kind, tc.want)
			}
		})
	}
	for _, k := range kindList {
		if got := bySuffix[Suffix(k)]; got != k {
			t.Errorf("suffix %s maps to %q, want %q", Suffix(k), got, k)
		}
		if !provider.ValidKind(k) {
			t.Errorf("kind %q is not a valid kind", k)
		}
	}
	if Suffix(KindMessagesUpsert) != "messages-upsert" || Suffix(KindGroupParticipantsUpdate) != "group-participants-update" {
		t.Errorf("Suffix does not follow Evolution's transformedWe")
	}
}

func TestSplitInvalid(t *testing.T) {
	p := New()
	for name, body := range map[string]string{
		"not json":           `{"event":`,
		"array":              `[{"event":"call"}]`,
		"no event":           `{"instance":"i","data":{}}`,
		"event not a string": `{"event":3,"instance":"i"}`,
		"empty":              ``,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := p.Split([]byte(body), provider.Delivery{Method: "POST"}); !errors.Is(err, provider.ErrInvalid) {
				t.Errorf("Split(%q) = %v, want ErrInvalid", body, err)
			}
		})
	}
	// An @lid chat is keyed by its phone-number form when the key gives it.
	items, err := p.Split([]byte(`{"event":"messages.upsert","instance":"i","data":{"key":{"remoteJid":"27@lid","remoteJidAlt":"5511988887777@s.whatsapp.net","id":"L"}}}`), provider.Delivery{})
	if err != nil || items[0].Chat != "5511988887777@s.whatsapp.net" {
		t.Errorf("Split of an @lid message = %+v, %v; want the chat by phone number", items, err)
	}
	// A chat no JID is that long is no chat to key by; the item is kept.
	long := strings.Repeat("5", 300) + "@s.whatsapp.net"
	items, err = p.Split([]byte(`{"event":"messages.upsert","instance":"i","data":{"key":{"remoteJid":"`+long+`","id":"L"}}}`), provider.Delivery{})
	if err != nil || len(items) != 1 || items[0].Chat != "" {
		t.Errorf("Split of a 300-byte chat = %+v, %v; want the item without a chat", strip(items), err)
	}
	// Odd field types are left out, not refused: the raw stream keeps them.
	items, err = p.Split([]byte(`{"event":"messages.upsert","instance":"i","data":{"key":"x","messageTimestamp":{"low":1749564201,"high":0}}}`), provider.Delivery{})
	if err != nil {
		t.Fatalf("Split with odd key: %v", err)
	}
	if want := time.Unix(1749564201, 0).UTC(); !items[0].Time.Equal(want) || items[0].Key != "" {
		t.Errorf("Split with a Long timestamp: %+v, want time %v and no key", strip(items), want)
	}
}

func TestCheckRoute(t *testing.T) {
	p := New()
	for _, tc := range []struct {
		method string
		segs   []string
		want   error
	}{
		{"POST", nil, nil},
		{"POST", []string{"messages-upsert"}, nil},
		{"POST", []string{"call"}, nil},
		{"POST", []string{"a-new-event"}, nil},
		{"GET", nil, provider.ErrMethod},
		{"PUT", []string{"call"}, provider.ErrMethod},
		{"POST", []string{"messages.upsert"}, provider.ErrNoRoute},
		{"POST", []string{"Call"}, provider.ErrNoRoute},
		{"POST", []string{"call", "x"}, provider.ErrNoRoute},
		{"POST", []string{string(bytes.Repeat([]byte("a"), 65))}, provider.ErrNoRoute},
	} {
		if err := p.CheckRoute(tc.method, tc.segs); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("CheckRoute(%s, %q) = %v, want %v", tc.method, tc.segs, err, tc.want)
		}
	}
}

// TestRedact: apikey goes, every other byte stays, the JSON stays valid.
func TestRedact(t *testing.T) {
	p := New()
	for _, name := range fixtures(t) {
		body := load(t, name)
		got := p.Redact(bytes.Clone(body))
		if bytes.Contains(got, []byte("B6D711FCDE4D4FD5936544120E713976")) || bytes.Contains(got, []byte(`"apikey"`)) {
			t.Errorf("Redact(%s) kept the apikey:\n%s", name, got)
		}
		if !json.Valid(got) {
			t.Fatalf("Redact(%s) is not valid JSON:\n%s", name, got)
		}
		var before, after map[string]any
		_ = json.Unmarshal(body, &before)
		_ = json.Unmarshal(got, &after)
		delete(before, "apikey")
		if diff := cmp.Diff(before, after); diff != "" {
			t.Errorf("Redact(%s) changed more than apikey (-want +got):\n%s", name, diff)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{`{"apikey":"k"}`, `{}`},
		{`{"apikey":"k","event":"call"}`, `{"event":"call"}`},
		{`{"event":"call","apikey":"k"}`, `{"event":"call"}`},
		{`{ "a":1 , "apikey" : "k" , "b":{"apikey":"inner"} }`, `{ "a":1 , "b":{"apikey":"inner"} }`},
		{`{"apikey":null,"a":[1,{"x":"}"}]}`, `{"a":[1,{"x":"}"}]}`},
		{`{"APIKEY":"k","a":1}`, `{"a":1}`},
		{`{"api\u006bey":"k","a":1}`, `{"a":1}`},
		{`{"apikey":"k","a":1,"apikey":"k2"}`, `{"a":1}`},
		{`{"a":1}`, `{"a":1}`},
		{`{}`, `{}`},
		// Not valid JSON: the value is emptied where it can be found.
		{`{"apikey": "secret", "data": {`, `{"apikey": "", "data": {`},
		{`{"apikey":"sec\"ret"`, `{"apikey":""`},
		{`not json "apikey":"s"`, `not json "apikey":""`},
	} {
		if got := string(p.Redact([]byte(tc.in))); got != tc.want {
			t.Errorf("Redact(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
