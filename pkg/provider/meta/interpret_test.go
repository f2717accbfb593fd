package meta_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/meta"
)

// interpretAll splits body and interprets each item.
func interpretAll(t *testing.T, body []byte) []fact.Facts {
	t.Helper()
	p := meta.New()
	items, err := p.Split(body, provider.Delivery{Method: "POST"})
	if err != nil {
		t.Fatalf("Split: %v", err)
	}
	var out []fact.Facts
	for _, it := range items {
		f, err := p.Interpret(it.Kind, it.Data)
		if err != nil {
			t.Fatalf("Interpret(%s): %v", it.Kind, err)
		}
		derivetest.CheckFacts(t, p, it.Kind, f)
		out = append(out, f)
	}
	return out
}

// TestInterpretFixtures: what each documented example tells
// (testdata/SOURCES.md).
func TestInterpretFixtures(t *testing.T) {
	seen := func(chat, name, dir string) fact.Facts {
		return fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: chat, Name: name, Direction: dir}}}
	}
	grp := func(c fact.GroupChange) fact.Facts {
		c.Chat = group
		return fact.Facts{Groups: []fact.GroupChange{c}}
	}
	want := map[string][]fact.Facts{
		"messages_text.json":   {seen("16505551234", "Sheena Nelson", fact.Incoming)},
		"statuses_sent.json":   {seen("16505551234", "", fact.Outgoing)},
		"statuses_failed.json": {{}},
		"messages_batch.json": {
			seen("16505551234", "Sheena Nelson", fact.Incoming),
			seen("16505559876", "Pablo Morales", fact.Incoming),
			seen("16505551234", "", fact.Outgoing),
			seen("16505551234", "", fact.Outgoing),
			seen("4915123456789", "Kim", fact.Incoming),
		},
		"calls_connect.json": {{
			Calls:     []fact.Call{{CallID: call1, Chat: "16315553602", From: "16315553602", State: fact.CallOffered, Status: "connect"}},
			ChatsSeen: []fact.ChatSeen{{Chat: "16315553602", Name: "Sheena Nelson", Direction: fact.Incoming}},
		}},
		// The business placed the call: the user is the callee, and the chat
		// is not shown as seen by an incoming call.
		"calls_connect_business.json": {{Calls: []fact.Call{{
			CallID: call5, Chat: "12185552828", From: "13175551399", State: fact.CallOffered, Status: "connect"}}}},
		"calls_terminate.json": {{Calls: []fact.Call{{
			CallID: call1, Chat: "16315553602", From: "16315553602", State: fact.CallEnded, Status: "COMPLETED"}}}},
		// Never picked up: no start_time.
		"calls_terminate_failed.json": {{Calls: []fact.Call{{
			CallID: call2, Chat: "16315553603", From: "16315553603", State: fact.CallMissed, Status: "FAILED"}}}},
		// Picked up, then failed: ended, not missed.
		"calls_terminate_failed_answered.json": {{Calls: []fact.Call{{
			CallID: call4, Chat: "16315553604", From: "16315553604", State: fact.CallEnded, Status: "FAILED"}}}, {}},
		"calls_status_ringing.json": {{Calls: []fact.Call{{
			CallID: call3, Chat: "163155536021", State: fact.CallOffered, Status: "RINGING"}}}},
		"calls_status_accepted.json": {{Calls: []fact.Call{{
			CallID: call3, Chat: "163155536021", State: fact.CallAccepted, Status: "ACCEPTED"}}}},
		"calls_status_rejected.json": {{Calls: []fact.Call{{
			CallID: call3, Chat: "163155536021", State: fact.CallRejected, Status: "REJECTED"}}}},
		"groups_create.json": {{
			Groups:       []fact.GroupChange{{Chat: group, Change: fact.GroupCreated, Subject: "Order 1234 support"}},
			ChatsCreated: []fact.ChatCreated{{Chat: group, Name: "Order 1234 support"}},
		}},
		// It failed: no group came of it.
		"groups_create_failed.json": {{}},
		"groups_delete.json":        {grp(fact.GroupChange{Change: fact.GroupDeleted})},
		"groups_participants_add.json": {grp(fact.GroupChange{Change: fact.GroupParticipantsAdded,
			Participants: []string{"16505551234"}, RequestMethod: "invite_link"})},
		"groups_participants_remove.json": {grp(fact.GroupChange{Change: fact.GroupParticipantsRemoved,
			Participants: []string{"16505559876"}})},
		"groups_participants_leave.json": {grp(fact.GroupChange{Change: fact.GroupParticipantsLeft,
			Participants: []string{"16505551234"}, Actor: "16505551234"})},
		"groups_join_request_created.json": {grp(fact.GroupChange{Change: fact.GroupJoinRequested,
			Participants: []string{"4915123456789"}})},
		"groups_join_request_revoked.json": {grp(fact.GroupChange{Change: fact.GroupJoinRevoked,
			Participants: []string{"4915123456789"}})},
		// The description's update failed; the subject's and picture's did not.
		"groups_settings_update.json": {{Groups: []fact.GroupChange{
			{Chat: group, Change: fact.GroupSubjectChanged, Subject: "Order 1234 support (closed)"},
			{Chat: group, Change: fact.GroupIconChanged},
		}}},
		"groups_status_suspend.json": {grp(fact.GroupChange{Change: fact.GroupSettingsChanged,
			Setting: &fact.Setting{Name: "suspended", Value: "true"}})},
		"account_update.json": {{}},
	}
	for _, name := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			w, ok := want[name]
			if !ok {
				t.Fatalf("no expectation for %s", name)
			}
			got := interpretAll(t, load(t, name))
			if diff := cmp.Diff(w, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Interpret(%s) mismatch (-want +got):\n%s", name, diff)
			}
		})
	}
}

// element wraps one element of field's arr as a Meta delivery.
func element(field, arr, el string) []byte {
	return []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"` + field +
		`","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"77"},"` + arr + `":[` + el + `]}}]}]}`)
}

func TestInterpretCases(t *testing.T) {
	const g = "G1"
	for name, tc := range map[string]struct {
		give []byte
		want fact.Facts
	}{
		"group message": {element("messages", "messages", `{"from":"5511","group_id":"G1","id":"wamid.1","timestamp":"1","type":"text"}`),
			fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: g, Direction: fact.Incoming}}}},
		"status to group": {element("messages", "statuses", `{"id":"wamid.1","status":"sent","recipient_id":"5511","group_id":"G1"}`),
			fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: g, Direction: fact.Outgoing}}}},
		"status without recipient": {element("messages", "statuses", `{"id":"wamid.1","status":"sent"}`), fact.Facts{}},
		// A business-initiated call is not the user's message: no chat seen.
		"business call connect": {element("calls", "calls", `{"id":"wacid.1","from":"1555","to":"5511","event":"connect","direction":"BUSINESS_INITIATED"}`),
			fact.Facts{Calls: []fact.Call{{CallID: "wacid.1", Chat: "5511", From: "1555", State: fact.CallOffered, Status: "connect"}}}},
		// start_time is there only when the call was picked up, so a zero
		// duration with it is a call answered and hung up at once.
		"terminate zero duration": {element("calls", "calls", `{"id":"wacid.1","from":"5511","event":"terminate","status":"COMPLETED","start_time":"1","duration":0}`),
			fact.Facts{Calls: []fact.Call{{CallID: "wacid.1", Chat: "5511", From: "5511", State: fact.CallEnded, Status: "COMPLETED"}}}},
		"terminate failed after pickup": {element("calls", "calls", `{"id":"wacid.1","from":"5511","event":"terminate","status":"FAILED","start_time":"1","duration":20}`),
			fact.Facts{Calls: []fact.Call{{CallID: "wacid.1", Chat: "5511", From: "5511", State: fact.CallEnded, Status: "FAILED"}}}},
		"terminate no start": {element("calls", "calls", `{"id":"wacid.1","from":"5511","event":"terminate","status":"COMPLETED"}`),
			fact.Facts{Calls: []fact.Call{{CallID: "wacid.1", Chat: "5511", From: "5511", State: fact.CallMissed, Status: "COMPLETED"}}}},
		"terminate without status": {element("calls", "calls", `{"id":"wacid.1","from":"5511","event":"terminate","start_time":"1","duration":5}`),
			fact.Facts{Calls: []fact.Call{{CallID: "wacid.1", Chat: "5511", From: "5511", State: fact.CallEnded, Status: "terminate"}}}},
		"other call event":   {element("calls", "calls", `{"id":"wacid.1","from":"5511","event":"something"}`), fact.Facts{}},
		"call status other":  {element("calls", "statuses", `{"id":"wacid.1","type":"call","status":"COMPLETED"}`), fact.Facts{}},
		"call status reject": {element("calls", "statuses", `{"id":"wacid.1","type":"call","status":"REJECTED","recipient_id":"5511"}`), fact.Facts{Calls: []fact.Call{{CallID: "wacid.1", Chat: "5511", State: fact.CallRejected, Status: "REJECTED"}}}},
		"removed by member": {element("group_participants_update", "groups", `{"group_id":"G1","type":"group_participants_remove","initiated_by":"5599","removed_participants":[{"wa_id":"5511"},{"input":"5522"}]}`),
			fact.Facts{Groups: []fact.GroupChange{{Chat: g, Change: fact.GroupParticipantsRemoved, Participants: []string{"5511", "5522"}, Actor: "5599"}}}},
		"remove nobody":   {element("group_participants_update", "groups", `{"group_id":"G1","type":"group_participants_remove","removed_participants":[]}`), fact.Facts{}},
		"add nobody":      {element("group_participants_update", "groups", `{"group_id":"G1","type":"group_participants_add","added_participants":[{}]}`), fact.Facts{}},
		"remove failed":   {element("group_participants_update", "groups", `{"group_id":"G1","type":"group_participants_remove","errors":[{"code":1}]}`), fact.Facts{}},
		"suspend cleared": {element("group_status_update", "groups", `{"group_id":"G1","type":"group_suspend_cleared"}`), fact.Facts{Groups: []fact.GroupChange{{Chat: g, Change: fact.GroupSettingsChanged, Setting: &fact.Setting{Name: "suspended", Value: "false"}}}}},
		"description cleared": {element("group_settings_update", "groups", `{"group_id":"G1","type":"group_settings_update","group_description":{"text":"","update_successful":true}}`),
			fact.Facts{Groups: []fact.GroupChange{{Chat: g, Change: fact.GroupDescriptionChanged}}}},
		"no group id":        {element("group_lifecycle_update", "groups", `{"type":"group_delete"}`), fact.Facts{}},
		"unknown group type": {element("group_lifecycle_update", "groups", `{"group_id":"G1","type":"group_archive"}`), fact.Facts{}},
	} {
		t.Run(name, func(t *testing.T) {
			got := interpretAll(t, tc.give)
			if diff := cmp.Diff([]fact.Facts{tc.want}, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Interpret mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInterpretInvalid(t *testing.T) {
	p := meta.New()
	for name, tc := range map[string]struct{ kind, data string }{
		"not json":         {"messages", `{`},
		"two entries":      {"messages", `{"entry":[{"changes":[{"value":{"messages":[{"from":"1"}]}}]},{}]}`},
		"no element":       {"messages", `{"entry":[{"changes":[{"value":{"messages":[]}}]}]}`},
		"two elements":     {"calls", `{"entry":[{"changes":[{"value":{"calls":[{},{}]}}]}]}`},
		"message no from":  {"messages", `{"entry":[{"changes":[{"value":{"messages":[{"id":"x"}]}}]}]}`},
		"message not obj":  {"messages", `{"entry":[{"changes":[{"value":{"messages":[3]}}]}]}`},
		"call without id":  {"calls", `{"entry":[{"changes":[{"value":{"calls":[{"event":"connect"}]}}]}]}`},
		"status no id":     {"calls.statuses", `{"entry":[{"changes":[{"value":{"statuses":[{"status":"RINGING"}]}}]}]}`},
		"group not object": {"group_lifecycle_update", `{"entry":[{"changes":[{"value":{"groups":["x"]}}]}]}`},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := p.Interpret(tc.kind, []byte(tc.data)); !errors.Is(err, provider.ErrInvalid) {
				t.Errorf("Interpret(%s, %s) = %v, want ErrInvalid", tc.kind, tc.data, err)
			}
		})
	}
	// Kinds that feed nothing are not read at all.
	for _, k := range []string{"errors", "calls.errors", "account_update", provider.KindUnknown} {
		if f, err := p.Interpret(k, []byte(`not json`)); err != nil || !f.Empty() {
			t.Errorf("Interpret(%s) = %+v, %v; want nothing", k, f, err)
		}
	}
}
