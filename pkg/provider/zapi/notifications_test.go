package zapi

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
)

// notificationNames is every notification name Interpret reads, with what
// it gives and whether Z-API documents the name. Verified names are in
// Z-API's docs (docs/webhooks/on-message-received.md in the Z-API docs
// repository, and its live "Notification types" list, seed 004): with a
// payload, or in the code-sample list. Unverified ones are WhatsApp's
// message stub names (WebMessageInfo.StubType), which Z-API passes
// through but does not print (providers.md §2 and §6): kept, so a
// deployment that sends them is understood, but no document shows their
// parameters.
var notificationNames = []struct {
	name     string
	verified bool
	// change is the group change, or "call." + the call state.
	change string
}{
	{"CALL_VOICE", true, "call." + fact.CallOffered},
	{"CALL_MISSED_VOICE", true, "call." + fact.CallMissed},
	{"CALL_MISSED_VIDEO", true, "call." + fact.CallMissed},
	{"CALL_VIDEO", false, "call." + fact.CallOffered},
	{"CALL_MISSED_GROUP_VOICE", false, "call." + fact.CallMissed},
	{"CALL_MISSED_GROUP_VIDEO", false, "call." + fact.CallMissed},

	{"MEMBERSHIP_APPROVAL_REQUEST", true, fact.GroupJoinRequested},
	{"REVOKED_MEMBERSHIP_REQUESTS", true, fact.GroupJoinRevoked},
	{"GROUP_MEMBER_LINK_PROPERTY_UPDATE", true, fact.GroupSettingsChanged},
	{"GROUP_CREATE", true, fact.GroupCreated},
	{"GROUP_PARTICIPANT_ADD", true, fact.GroupParticipantsAdded},
	{"GROUP_PARTICIPANT_REMOVE", true, fact.GroupParticipantsRemoved},
	{"GROUP_PARTICIPANT_LEAVE", true, fact.GroupParticipantsLeft},

	{"GROUP_CHANGE_SUBJECT", false, fact.GroupSubjectChanged},
	{"GROUP_CHANGE_DESCRIPTION", false, fact.GroupDescriptionChanged},
	{"GROUP_CHANGE_ICON", false, fact.GroupIconChanged},
	{"GROUP_PARTICIPANT_PROMOTE", false, fact.GroupParticipantsPromote},
	{"GROUP_PARTICIPANT_DEMOTE", false, fact.GroupParticipantsDemote},
	{"GROUP_PARTICIPANT_INVITE", false, fact.GroupParticipantsAdded},
	{"GROUP_PARTICIPANT_ACCEPT", false, fact.GroupParticipantsAdded},
	{"GROUP_PARTICIPANT_ADD_REQUEST_JOIN", false, fact.GroupParticipantsAdded},
	{"GROUP_PARTICIPANT_LINKED_GROUP_JOIN", false, fact.GroupParticipantsAdded},
	{"GROUP_MEMBERSHIP_JOIN_APPROVAL_REQUEST", false, fact.GroupJoinRequested},
	{"GROUP_MEMBERSHIP_JOIN_APPROVAL_REQUEST_NON_ADMIN_ADD", false, fact.GroupJoinRequested},
	{"GROUP_CHANGE_ANNOUNCE", false, fact.GroupSettingsChanged},
	{"GROUP_CHANGE_RESTRICT", false, fact.GroupSettingsChanged},
	{"GROUP_CHANGE_INVITE_LINK", false, fact.GroupSettingsChanged},
	{"GROUP_MEMBER_ADD_MODE", false, fact.GroupSettingsChanged},
	{"GROUP_MEMBERSHIP_JOIN_APPROVAL_MODE", false, fact.GroupSettingsChanged},
}

// TestNotificationNames: every name Interpret maps is in the table, marked
// verified or not, and gives the change the table says.
func TestNotificationNames(t *testing.T) {
	listed := map[string]bool{}
	for _, n := range notificationNames {
		if listed[n.name] {
			t.Errorf("%s listed twice", n.name)
		}
		listed[n.name] = true
	}
	for name := range groupChanges {
		if !listed[name] {
			t.Errorf("groupChanges maps %s, which notificationNames does not list (verified or not)", name)
		}
	}
	for _, n := range notificationNames {
		t.Run(n.name, func(t *testing.T) {
			body := `{"isGroup":true,"instanceId":"i","messageId":"m","phone":"120363019502650977-group","participantPhone":"5544999999999",` +
				`"fromMe":false,"momment":1682017970000,"type":"ReceivedCallback","notification":"` + n.name + `","notificationParameters":["5544888888888"],"callId":"c1"}`
			f, err := New().Interpret(KindNotification, []byte(body))
			if err != nil {
				t.Fatalf("Interpret: %v", err)
			}
			var got string
			switch {
			case len(f.Calls) == 1:
				got = "call." + f.Calls[0].State
			case len(f.Groups) == 1:
				got = f.Groups[0].Change
			}
			if got != n.change {
				t.Errorf("%s (verified: %v) gives %q, want %q", n.name, n.verified, got, n.change)
			}
			if strings.HasPrefix(n.name, "CALL_") != strings.HasPrefix(got, "call.") {
				t.Errorf("%s is read as %q", n.name, got)
			}
		})
	}
}

// TestMomentBound: a momment is trusted from 2009 (before WhatsApp) to a
// day ahead of the receiving clock, both ends included.
func TestMomentBound(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		t    time.Time
		want bool
	}{
		{earliestTime, true},
		{earliestTime.Add(-time.Second), false},
		{now.Add(maxAhead), true},
		{now.Add(maxAhead + time.Second), false},
		{now, true},
		{time.Unix(26151515154, 0), false}, // the docs' ConnectedCallback placeholder
		{time.Unix(1580163342, 0), true},   // DisconnectedCallback's seconds
		{time.Unix(0, 0), false},
	} {
		if got := trustedAt(tc.t, now); got != tc.want {
			t.Errorf("trustedAt(%v, %v) = %v, want %v", tc.t, now, got, tc.want)
		}
	}
	// Through Split: an untrusted momment leaves the item without a time.
	for momment, want := range map[string]time.Time{
		"26151515154":   {},
		"1230681600000": {}, // 2008-12-31 in milliseconds: before the bound
		"1632228638000": time.UnixMilli(1632228638000).UTC(),
	} {
		items, err := New().Split([]byte(`{"type":"DisconnectedCallback","momment":`+momment+`,"instanceId":"i"}`), provider.Delivery{})
		if err != nil || len(items) != 1 {
			t.Fatalf("Split: %v, %d items", err, len(items))
		}
		if !items[0].Time.Equal(want) {
			t.Errorf("momment %s: time %v, want %v", momment, items[0].Time, want)
		}
	}
}

// TestKindsTable: Split gives each callback type the kinds the table says,
// and typeOfKind maps them back.
func TestKindsTable(t *testing.T) {
	for _, c := range callbacks {
		for _, k := range c.kinds {
			if typeOfKind(k) != c.typ {
				t.Errorf("typeOfKind(%s) = %q, want %s", k, typeOfKind(k), c.typ)
			}
			if !slices.Contains(allKinds(), k) {
				t.Errorf("allKinds lacks %s", k)
			}
		}
		if len(c.kinds) != 1 {
			continue
		}
		items, err := New().Split([]byte(`{"type":"`+strings.ToLower(c.typ)+`","instanceId":"i","phone":"5544999999999"}`), provider.Delivery{})
		if err != nil || len(items) != 1 || items[0].Kind != c.kinds[0] {
			t.Errorf("Split(%s) = %+v, %v; want kind %s", c.typ, items, err, c.kinds[0])
		}
	}
	if typeOfKind(provider.KindUnknown) != "" || typeOfKind("received.nonsense") != "" {
		t.Error("typeOfKind of a kind Split never names is not empty")
	}
}

// TestNonAdminAddLeavesTheAdderOut: in a non_admin_add approval request the
// member who added the others (participantPhone, or participantLid) is the
// actor, not a requester, whichever of its ids the parameters use.
func TestNonAdminAddLeavesTheAdderOut(t *testing.T) {
	for name, tc := range map[string]struct {
		notification, extra string
		want                []string
	}{
		"by the payload's requestMethod": {"MEMBERSHIP_APPROVAL_REQUEST",
			`"participantPhone":"5544999999999","requestMethod":"non_admin_add","notificationParameters":["5544999999999","5544888888888"]`,
			[]string{"5544888888888"}},
		"by the stub name, the adder as a lid": {"GROUP_MEMBERSHIP_JOIN_APPROVAL_REQUEST_NON_ADMIN_ADD",
			`"participantPhone":"5544999999999","participantLid":"9001@lid","notificationParameters":["9001@lid","5544888888888@s.whatsapp.net"]`,
			[]string{"5544888888888@s.whatsapp.net"}},
		"invite_link keeps its requester": {"MEMBERSHIP_APPROVAL_REQUEST",
			`"participantPhone":"5544999999999","requestMethod":"invite_link","notificationParameters":["5544999999999"]`,
			[]string{"5544999999999"}},
	} {
		t.Run(name, func(t *testing.T) {
			body := `{"isGroup":true,"instanceId":"i","messageId":"m","phone":"120363019502650977-group","fromMe":false,` +
				`"type":"ReceivedCallback","notification":"` + tc.notification + `",` + tc.extra + `}`
			f, err := New().Interpret(KindNotification, []byte(body))
			if err != nil || len(f.Groups) != 1 {
				t.Fatalf("Interpret = %+v, %v; want one group change", f, err)
			}
			if g := f.Groups[0]; !slices.Equal(g.Participants, tc.want) || g.Actor != "5544999999999" {
				t.Errorf("participants %v, actor %q; want %v, actor 5544999999999", g.Participants, g.Actor, tc.want)
			}
		})
	}
}
