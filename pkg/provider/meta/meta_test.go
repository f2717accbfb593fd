package meta_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/meta"
)

const (
	waba  = "102290129340398"
	phone = "106540352242922"
	group = "Y2FwaV9ncm91cDoxNTU1MDc4Mzg4MToxMjAzNjMzOTY0OTQyODY4MjQ"
	// Call ids as in Meta's Calling API examples (testdata/SOURCES.md).
	call1 = "wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh"
	call2 = "wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gi"
	call3 = "wacid.ABGGFjFVU2AfAgo6V"
	call4 = "wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gj"
	call5 = "wacid.HBgLMTIxODU1NTI4MjgVAgARGCAyODRQIAFRoA"
	sent  = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA"
)

func load(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
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

func unix(s int64) time.Time { return time.Unix(s, 0).UTC() }

// head is an item without its Data.
type head struct {
	Kind, Channel, Key, Chat string
	Time                     time.Time
}

func heads(items []provider.Item) []head {
	out := make([]head, len(items))
	for i, it := range items {
		out[i] = head{it.Kind, it.Channel, it.Key, it.Chat, it.Time}
	}
	return out
}

// TestSplitFixtures: every documented example splits into the items its
// elements make (testdata/SOURCES.md says where each comes from).
func TestSplitFixtures(t *testing.T) {
	want := map[string][]head{
		"messages_text.json": {{"messages", phone, "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", "16505551234", unix(1749416383)}},
		"statuses_sent.json": {{"statuses", phone, sent + "/sent", "16505551234", unix(1750263773)}},
		"statuses_failed.json": {{"statuses", phone, "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI4OUNFRjIzNTE5QTc1OTFBMzUA/failed",
			"16505551235", unix(1750263780)}},
		"messages_batch.json": {
			{"messages", phone, "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFBQUFBQUFBQUFBQUFBQUFBQQA=", "16505551234", unix(1749416390)},
			{"messages", phone, "wamid.HBgLMTY1MDU1NTk4NzYVAgASGBQzQkJCQkJCQkJCQkJCQkJCQkJCQgA=", "16505559876", unix(1749416391)},
			{"statuses", phone, sent + "/delivered", "16505551234", unix(1750263775)},
			{"statuses", phone, sent + "/read", "16505551234", unix(1750263790)},
			{"messages", "107654321098765", "wamid.HBgNNDkxNTEyMzQ1Njc4ORUCABIYFDNDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDAA==", "4915123456789", unix(1749416400)},
		},
		"calls_connect.json":          {{"calls", phone, call1 + "/connect", "16315553602", unix(1671644824)}},
		"calls_connect_business.json": {{"calls", phone, call5 + "/connect", "12185552828", unix(1749196895)}},
		"calls_terminate.json":        {{"calls", phone, call1 + "/terminate", "16315553602", unix(1671644824)}},
		"calls_terminate_failed.json": {{"calls", phone, call2 + "/terminate", "16315553603", unix(1671645000)}},
		"calls_terminate_failed_answered.json": {
			{"calls", phone, call4 + "/terminate", "16315553604", unix(1760681533)},
			{"calls.errors", phone, "", "", time.Time{}},
		},
		"calls_status_ringing.json":  {{"calls.statuses", phone, call3 + "/RINGING", "163155536021", unix(1671644824)}},
		"calls_status_accepted.json": {{"calls.statuses", phone, call3 + "/ACCEPTED", "163155536021", unix(1671644824)}},
		"calls_status_rejected.json": {{"calls.statuses", phone, call3 + "/REJECTED", "163155536021", unix(1671644824)}},
		"groups_create.json":         {{"group_lifecycle_update", phone, "group_create/3d8a7b1c5e/" + group, group, unix(1749419000)}},
		"groups_create_failed.json": {{"group_lifecycle_update", phone, "group_create/3d8a7b1c5f/" + group + "X", group + "X",
			unix(1749419010)}},
		"groups_delete.json":           {{"group_lifecycle_update", phone, "group_delete/9f1e2d3c4b/" + group, group, unix(1749419900)}},
		"groups_participants_add.json": {{"group_participants_update", phone, "", group, unix(1749419100)}},
		"groups_participants_remove.json": {{"group_participants_update", phone, "group_participants_remove/7a6b5c4d3e/" + group,
			group, unix(1749419200)}},
		"groups_participants_leave.json": {{"group_participants_update", phone, "", group, unix(1749419300)}},
		"groups_join_request_created.json": {{"group_participants_update", phone,
			"group_join_request_created/MTIzNDU2Nzg5MDEyMzQ1Njc4/" + group, group, unix(1749419400)}},
		"groups_join_request_revoked.json": {{"group_participants_update", phone,
			"group_join_request_revoked/MTIzNDU2Nzg5MDEyMzQ1Njc4/" + group, group, unix(1749419460)}},
		"groups_settings_update.json": {{"group_settings_update", phone, "group_settings_update/5e4d3c2b1a/" + group, group, unix(1749419500)}},
		"groups_status_suspend.json":  {{"group_status_update", phone, "", group, unix(1749419600)}},
		// About the account: no metadata, so the account's id is the channel.
		"account_update.json": {{"account_update", waba, "", "", time.Time{}}},
	}
	p := meta.New()
	for _, name := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			w, ok := want[name]
			if !ok {
				t.Fatalf("no expectation for %s", name)
			}
			items, err := p.Split(load(t, name), provider.Delivery{Method: "POST"})
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			if diff := cmp.Diff(w, heads(items)); diff != "" {
				t.Errorf("Split(%s) mismatch (-want +got):\n%s", name, diff)
			}
			for _, it := range items {
				resplit(t, p, it)
			}
		})
	}
}

// resplit checks that an item's Data is a delivery of that one item.
func resplit(t *testing.T, p *meta.Provider, it provider.Item) {
	t.Helper()
	again, err := p.Split(it.Data, provider.Delivery{Method: "POST"})
	if err != nil {
		t.Fatalf("Split(item data %s): %v", it.Data, err)
	}
	if diff := cmp.Diff([]provider.Item{it}, again, cmp.Transformer("json", func(b []byte) string { return string(b) })); diff != "" {
		t.Errorf("Split(item data) is not the item (-want +got):\n%s", diff)
	}
}

// TestSplitBatchData: each item of a batch carries its own element, the
// value's metadata and the contact of its own sender only.
func TestSplitBatchData(t *testing.T) {
	items, err := meta.New().Split(load(t, "messages_batch.json"), provider.Delivery{Method: "POST"})
	if err != nil {
		t.Fatalf("Split: %v", err)
	}
	type value struct {
		MessagingProduct string `json:"messaging_product"`
		Metadata         struct {
			PhoneNumberID string `json:"phone_number_id"`
		} `json:"metadata"`
		Contacts []struct {
			WaID string `json:"wa_id"`
		} `json:"contacts"`
		Messages []struct{ ID string }     `json:"messages"`
		Statuses []struct{ Status string } `json:"statuses"`
	}
	type one struct {
		Object string `json:"object"`
		Entry  []struct {
			ID      string `json:"id"`
			Changes []struct {
				Field string `json:"field"`
				Value value  `json:"value"`
			} `json:"changes"`
		} `json:"entry"`
	}
	var got []string
	for _, it := range items {
		var o one
		if err := json.Unmarshal(it.Data, &o); err != nil {
			t.Fatalf("item data %s: %v", it.Data, err)
		}
		if o.Object != meta.Object || len(o.Entry) != 1 || len(o.Entry[0].Changes) != 1 {
			t.Fatalf("item data %s is not one entry of one change", it.Data)
		}
		c := o.Entry[0].Changes[0]
		var contacts []string
		for _, ct := range c.Value.Contacts {
			contacts = append(contacts, ct.WaID)
		}
		got = append(got, strings.Join([]string{o.Entry[0].ID, c.Field, c.Value.MessagingProduct, c.Value.Metadata.PhoneNumberID,
			strings.Join(contacts, "+"), strings.Repeat("m", len(c.Value.Messages)) + strings.Repeat("s", len(c.Value.Statuses))}, " "))
	}
	want := []string{
		waba + " messages whatsapp " + phone + " 16505551234 m",
		waba + " messages whatsapp " + phone + " 16505559876 m",
		waba + " messages whatsapp " + phone + "  s",
		waba + " messages whatsapp " + phone + "  s",
		"109876543210987 messages whatsapp 107654321098765 4915123456789 m",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("items' data (-want +got):\n%s", diff)
	}
}

func TestSplitMaxItems(t *testing.T) {
	body := load(t, "messages_batch.json")
	p := meta.New()
	if _, err := p.Split(body, provider.Delivery{Method: "POST", MaxItems: 4}); !errors.Is(err, provider.ErrTooManyItems) {
		t.Errorf("Split(5 items, MaxItems 4) = %v, want ErrTooManyItems", err)
	}
	if items, err := p.Split(body, provider.Delivery{Method: "POST", MaxItems: 5}); err != nil || len(items) != 5 {
		t.Errorf("Split(5 items, MaxItems 5) = %d items, %v; want 5, nil", len(items), err)
	}
}

// TestSplitBounds: a member every element shares is repeated in each
// item, so a large one in a batch is refused rather than multiplied; many
// contacts are read once, not once per element.
func TestSplitBounds(t *testing.T) {
	big := strings.Repeat("x", 64<<10)
	els := strings.TrimSuffix(strings.Repeat(`{"id":"m","from":"1"},`, 200), ",")
	body := `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"7","pad":"` +
		big + `"},"messages":[` + els + `]}}]}]}`
	if _, err := meta.New().Split([]byte(body), provider.Delivery{Method: "POST", MaxItems: 1000}); !errors.Is(err, provider.ErrInvalid) {
		t.Errorf("Split(200 elements sharing 64 KiB) = %v, want ErrInvalid", err)
	}
	// The same elements without the large member are fine.
	small := strings.Replace(body, big, "x", 1)
	if items, err := meta.New().Split([]byte(small), provider.Delivery{Method: "POST", MaxItems: 1000}); err != nil || len(items) != 200 {
		t.Errorf("Split(200 elements) = %d items, %v", len(items), err)
	}
	contacts := strings.TrimSuffix(strings.Repeat(`{"wa_id":"2","profile":{"name":"n"}},`, 20000), ",")
	many := `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"7"},"contacts":[` +
		contacts + `,{"wa_id":"1"}],"messages":[` + els + `]}}]}]}`
	items, err := meta.New().Split([]byte(many), provider.Delivery{Method: "POST", MaxItems: 1000})
	if err != nil || len(items) != 200 {
		t.Fatalf("Split(200 elements, 20001 contacts) = %d items, %v", len(items), err)
	}
	if !strings.Contains(string(items[0].Data), `"contacts":[{"wa_id":"1"}]`) {
		t.Errorf("item data %s does not carry its sender's contact only", items[0].Data)
	}
}

func TestSplitKinds(t *testing.T) {
	const meta1 = `"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"77"}`
	for name, tc := range map[string]struct {
		give string
		want []string
	}{
		"value errors":        {`{"field":"messages","value":{` + meta1 + `,"errors":[{"code":131000}]}}`, []string{"errors"}},
		"call errors":         {`{"field":"calls","value":{` + meta1 + `,"errors":[{"code":131000}]}}`, []string{"calls.errors"}},
		"unknown field":       {`{"field":"brand_new","value":{` + meta1 + `}}`, []string{provider.KindUnknown}},
		"unknown element":     {`{"field":"brand_new","value":{` + meta1 + `,"messages":[{"id":"x"}]}}`, []string{provider.KindUnknown}},
		"empty messages":      {`{"field":"messages","value":{` + meta1 + `,"messages":[]}}`, []string{provider.KindUnknown}},
		"messages in group":   {`{"field":"group_settings_update","value":{` + meta1 + `,"messages":[{"id":"x"}]}}`, []string{provider.KindUnknown}},
		"no value":            {`{"field":"security"}`, []string{"security"}},
		"statuses and errors": {`{"field":"messages","value":{` + meta1 + `,"statuses":[{"id":"a","status":"sent"}],"errors":[{}]}}`, []string{"statuses", "errors"}},
	} {
		t.Run(name, func(t *testing.T) {
			body := `{"object":"whatsapp_business_account","entry":[{"id":"9","changes":[` + tc.give + `]}]}`
			items, err := meta.New().Split([]byte(body), provider.Delivery{Method: "POST"})
			if err != nil {
				t.Fatalf("Split(%s): %v", body, err)
			}
			var got []string
			for _, it := range items {
				got = append(got, it.Kind)
				resplit(t, meta.New(), it)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("kinds (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSplitInvalid(t *testing.T) {
	for name, body := range map[string]string{
		"not json":         `{"object":`,
		"array":            `[{"object":"whatsapp_business_account"}]`,
		"empty":            ``,
		"other object":     `{"object":"page","entry":[{"id":"1","changes":[{"field":"feed","value":{}}]}]}`,
		"no entry":         `{"object":"whatsapp_business_account"}`,
		"entry not array":  `{"object":"whatsapp_business_account","entry":{}}`,
		"entry not object": `{"object":"whatsapp_business_account","entry":[1]}`,
		"changes not list": `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":"x"}]}`,
		"change not obj":   `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[true]}]}`,
		"no changes":       `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[]}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := meta.New().Split([]byte(body), provider.Delivery{Method: "POST"}); !errors.Is(err, provider.ErrInvalid) {
				t.Errorf("Split(%s) = %v, want ErrInvalid", body, err)
			}
		})
	}
}

func TestName(t *testing.T) {
	if got := meta.New().Name(); got != "meta" {
		t.Errorf("Name() = %q, want meta", got)
	}
}
