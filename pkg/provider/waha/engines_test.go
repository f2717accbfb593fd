package waha_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
)

// wrapEngine puts a payload in a WAHA envelope of the given engine and me
// (WAHAWebhook in devlikeapro/waha src/structures/webhooks.dto.ts); engine
// or me "" leaves it out.
func wrapEngine(engine, event, payload, me string) []byte {
	b := `{"id":"evt_01ENGINE","timestamp":1634567890123,"session":"default",`
	if engine != "" {
		b += `"engine":"` + engine + `",`
	}
	b += `"event":"` + event + `","payload":` + payload
	if me != "" {
		b += `,"me":` + me
	}
	return []byte(b + `}`)
}

// TestInterpretEngines: what each WAHA engine sends, as WAHA's own source
// builds it (devlikeapro/waha src/core/engines/{webjs,noweb,gows}/groups.*.ts,
// src/core/engines/gows/session.gows.core.ts, types.group.ts).
func TestInterpretEngines(t *testing.T) {
	const (
		grp      = "120363000000000001@g.us"
		alice    = "5511@c.us"
		aliceJID = "5511@s.whatsapp.net"
		aliceLID = "9001@lid"
		admin    = "5599@c.us"
		adminJID = "5599@s.whatsapp.net"
		adminLID = "9009@lid"
		meID     = "5500@c.us"
		meJID    = "5500@s.whatsapp.net"
		meLID    = "9000@lid"
		me       = `{"id":"` + meID + `","pushName":"Me"}`
		meBoth   = `{"id":"` + meID + `","lid":"` + meLID + `","pushName":"Me"}`
		group    = `"group":{"id":"` + grp + `"}`
	)
	aliceAlias := []fact.Alias{{LID: aliceLID, Phone: aliceJID}}
	setting := func(name, value string) *fact.Setting { return &fact.Setting{Name: name, Value: value} }
	for name, tc := range map[string]struct {
		engine, event, payload, me string
		want                       fact.Facts
	}{
		// group.v2.participants.join-request. GOWS: ToGroupV2ParticipantsJoinRequestEvents
		// (requesterPn from the request's PhoneNumber, _data the GroupJoinRequestEvent).
		"join-request gows created": {
			"GOWS", "group.v2.participants.join-request",
			`{` + group + `,"action":"created","requesterId":"` + aliceLID + `","requesterPn":"` + alice + `","requestMethod":"invite_link","timestamp":1666943582000,` +
				`"_data":{"JID":"` + grp + `","Sender":"` + aliceLID + `","SenderPN":"` + aliceJID + `","Action":"created","Requests":[{"JID":"` + aliceLID + `","PhoneNumber":"` + aliceJID + `","RequestMethod":"invite_link"}]}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{
				Chat: grp, Change: fact.GroupJoinRequested, Participants: []string{alice}, Actor: aliceJID, RequestMethod: "invite_link",
			}}, Aliases: aliceAlias},
		},
		"join-request gows rejected by an admin": {
			"GOWS", "group.v2.participants.join-request",
			`{` + group + `,"action":"rejected","requesterId":"` + aliceLID + `","requesterPn":null,"requestMethod":null,` +
				`"_data":{"JID":"` + grp + `","Sender":"` + adminLID + `","Action":"revoked","Requests":[{"JID":"` + aliceLID + `","PhoneNumber":""}]}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupJoinRejected, Participants: []string{aliceLID}, Actor: adminLID}}},
		},
		// NOWEB: ToGroupV2ParticipantsJoinRequestEvent, _data Baileys'
		// group.join-request update {id, author, authorPn, participant, participantPn, action, method}.
		"join-request noweb revoked": {
			"NOWEB", "group.v2.participants.join-request",
			`{` + group + `,"action":"revoked","requesterId":"` + aliceLID + `","requesterPn":"` + alice + `","requestMethod":"non_admin_add",` +
				`"_data":{"id":"` + grp + `","author":"` + aliceLID + `","authorPn":"` + aliceJID + `","participant":"` + aliceLID + `","participantPn":"` + aliceJID + `","action":"revoked","method":"non_admin_add"}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{
				Chat: grp, Change: fact.GroupJoinRevoked, Participants: []string{alice}, Actor: aliceJID, RequestMethod: "non_admin_add",
			}}, Aliases: aliceAlias},
		},
		// WEBJS: ToGroupV2ParticipantsJoinRequestEvent, created only, the requester is the notification's author.
		"join-request webjs created": {
			"WEBJS", "group.v2.participants.join-request",
			`{` + group + `,"action":"created","requesterId":"` + alice + `","timestamp":1666943582,` +
				`"_data":{"id":{"remote":"` + grp + `"},"type":"membership_approval_request","author":"` + alice + `","chatId":"` + grp + `","recipientIds":[]}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupJoinRequested, Participants: []string{alice}, Actor: alice}}},
		},
		"join-request of another action tells nothing": {
			"GOWS", "group.v2.participants.join-request", `{` + group + `,"action":"approved","requesterId":"` + aliceLID + `"}`, me, fact.Facts{},
		},

		// GOWS calls (devlikeapro/waha src/core/engines/gows/session.gows.core.ts
		// toCallData): CallData's from is toCusFormat(_data.From || _data.GroupJID),
		// often the caller's …@lid; _data is whatsmeow's event (tulir/whatsmeow
		// types/call.go BasicCallMeta {From, Timestamp, CallCreator,
		// CallCreatorAlt, CallID, GroupJID}, and the call node Data; call.go
		// sets CallCreatorAlt from the node's caller_pn when CallCreator is a
		// …@lid, else from caller_lid).
		"call gows: from is the chat, alt the caller's phone id": {
			"GOWS", "call.received",
			`{"id":"C1","from":"` + aliceLID + `","timestamp":1666943582,"isVideo":false,"isGroup":false,` +
				`"_data":{"From":"` + aliceLID + `","CallCreator":"` + aliceLID + `","CallCreatorAlt":"` + aliceJID + `","CallID":"C1","GroupJID":""}}`,
			me, fact.Facts{Calls: []fact.Call{{CallID: "C1", Chat: aliceLID, From: aliceJID, ChatPhone: aliceJID, State: fact.CallOffered, Status: "call.received"}}, Aliases: aliceAlias},
		},
		"call gows: caller_pn when there is no alt": {
			"GOWS", "call.received",
			`{"id":"C1","from":"` + aliceLID + `","_data":{"From":"` + aliceLID + `","CallCreator":"` + aliceLID + `","CallCreatorAlt":"",` +
				`"Data":{"Tag":"offer","Attrs":{"call-id":"C1","call-creator":"` + aliceLID + `","caller_pn":"` + aliceJID + `"}}}}`,
			me, fact.Facts{Calls: []fact.Call{{CallID: "C1", Chat: aliceLID, From: aliceJID, ChatPhone: aliceJID, State: fact.CallOffered, Status: "call.received"}}, Aliases: aliceAlias},
		},
		"call gows: a phone-number caller is kept; from is the chat, as WAHA gives it": {
			"GOWS", "call.accepted",
			`{"id":"C1","from":"` + alice + `","_data":{"From":"` + aliceJID + `","CallCreator":"` + aliceJID + `","CallCreatorAlt":"` + aliceLID + `"}}`,
			me, fact.Facts{Calls: []fact.Call{{CallID: "C1", Chat: alice, From: alice, State: fact.CallAccepted, Status: "call.accepted"}}, Aliases: aliceAlias},
		},
		// Messages: GOWS's _data is whatsmeow's events.Message (Info is a
		// MessageInfo, whose MessageSource has Chat, Sender, SenderAlt,
		// RecipientAlt, IsFromMe, IsGroup), NOWEB's the Baileys WAMessage
		// (key: remoteJid, remoteJidAlt, participant, participantAlt in v7;
		// senderPn, participantPn in 6.8).
		"message gows: a contact's LID with SenderAlt": {
			"GOWS", "message",
			`{"id":"false_` + aliceLID + `_A1","timestamp":1666943582,"from":"` + aliceLID + `","fromMe":false,"body":"hi",` +
				`"_data":{"Info":{"Chat":"` + aliceLID + `","Sender":"` + aliceLID + `","SenderAlt":"` + aliceJID + `","IsFromMe":false,"IsGroup":false,"ID":"A1"}}}`,
			me, fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: aliceLID, Direction: fact.Incoming}}, Aliases: aliceAlias},
		},
		"message gows: ours to a LID, RecipientAlt is the chat's phone id": {
			"GOWS", "message.any",
			`{"id":"true_` + aliceLID + `_A2","timestamp":1666943582,"from":"` + meID + `","to":"` + aliceLID + `","fromMe":true,` +
				`"_data":{"Info":{"Chat":"` + aliceLID + `","Sender":"` + meLID + `","SenderAlt":"` + meJID + `","RecipientAlt":"` + aliceJID + `","IsFromMe":true,"IsGroup":false}}}`,
			me, fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: aliceLID, Direction: fact.Outgoing}},
				Aliases: []fact.Alias{{LID: meLID, Phone: meJID}, {LID: aliceLID, Phone: aliceJID}}},
		},
		"message gows in a group: the sender's pair only": {
			"GOWS", "message",
			`{"id":"false_` + grp + `_A3_` + aliceLID + `","timestamp":1666943582,"from":"` + grp + `","participant":"` + aliceLID + `","fromMe":false,` +
				`"_data":{"Info":{"Chat":"` + grp + `","Sender":"` + aliceLID + `","SenderAlt":"` + aliceJID + `","RecipientAlt":"` + adminJID + `","IsFromMe":false,"IsGroup":true}}}`,
			me, fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: grp, Direction: fact.Incoming}}, Aliases: aliceAlias},
		},
		"message noweb: remoteJidAlt and a group's participantAlt": {
			"NOWEB", "message",
			`{"id":"false_` + aliceLID + `_A4","timestamp":1666943582,"from":"` + aliceLID + `","fromMe":false,` +
				`"_data":{"key":{"remoteJid":"` + aliceLID + `","remoteJidAlt":"` + aliceJID + `","fromMe":false,"id":"A4"}}}`,
			me, fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: aliceLID, Direction: fact.Incoming}}, Aliases: aliceAlias},
		},
		"message noweb in a group: participantPn": {
			"NOWEB", "message",
			`{"id":"false_` + grp + `_A5","timestamp":1666943582,"from":"` + grp + `","fromMe":false,` +
				`"_data":{"key":{"remoteJid":"` + grp + `","participant":"` + adminLID + `","participantPn":"` + adminJID + `","fromMe":false,"id":"A5"}}}`,
			me, fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: grp, Direction: fact.Incoming}}, Aliases: []fact.Alias{{LID: adminLID, Phone: adminJID}}},
		},
		"message webjs: no pair read": {
			"WEBJS", "message",
			`{"id":"false_` + alice + `_A6","timestamp":1666943582,"from":"` + alice + `","fromMe":false,"_data":{"id":{"remote":"` + alice + `"}}}`,
			me, fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: alice, Direction: fact.Incoming}}},
		},
		"call gows: without from, the creator stands in": {
			"GOWS", "call.received",
			`{"id":"C1","_data":{"CallCreator":"` + aliceLID + `","CallCreatorAlt":"` + aliceJID + `"}}`,
			me, fact.Facts{Calls: []fact.Call{{CallID: "C1", Chat: aliceLID, From: aliceJID, ChatPhone: aliceJID, State: fact.CallOffered, Status: "call.received"}}, Aliases: aliceAlias},
		},
		"call gows: no phone id known keeps the lid": {
			"GOWS", "call.rejected",
			`{"id":"C1","from":"` + aliceLID + `","_data":{"CallCreator":"` + aliceLID + `","CallCreatorAlt":"` + aliceLID + `"}}`,
			me, fact.Facts{Calls: []fact.Call{{CallID: "C1", Chat: aliceLID, From: aliceLID, State: fact.CallRejected, Status: "call.rejected"}}},
		},

		// group.v2.leave names nobody: the participant is me.
		"leave gows: you left": {
			"GOWS", "group.v2.leave",
			`{"timestamp":1666943582000,` + group + `,"_data":{"JID":"` + grp + `","Sender":"` + meJID + `","Leave":["` + meJID + `"]}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsLeft, Participants: []string{meID}, Actor: meJID}}},
		},
		"leave gows: an admin removed you": {
			"GOWS", "group.v2.leave",
			`{` + group + `,"_data":{"JID":"` + grp + `","Sender":"` + adminJID + `","Leave":["` + meJID + `"]}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsRemoved, Participants: []string{meID}, Actor: adminJID}}},
		},
		"leave gows: your own lid": {
			"GOWS", "group.v2.leave",
			`{` + group + `,"_data":{"JID":"` + grp + `","Sender":"` + meLID + `","Leave":["` + meLID + `"]}}`,
			meBoth, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsLeft, Participants: []string{meID}, Actor: meLID}}},
		},
		"leave gows: another lid removed you": {
			"GOWS", "group.v2.leave",
			`{` + group + `,"_data":{"JID":"` + grp + `","Sender":"` + adminLID + `","Leave":["` + meLID + `"]}}`,
			meBoth, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsRemoved, Participants: []string{meID}, Actor: adminLID}}},
		},
		"leave gows: a lid actor against no lid of yours cannot be told": {
			"GOWS", "group.v2.leave",
			`{` + group + `,"_data":{"JID":"` + grp + `","Sender":"` + adminLID + `"}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsLeft, Participants: []string{meID}, Actor: adminLID}}},
		},
		"leave noweb: removed by an admin": {
			"NOWEB", "group.v2.leave",
			`{` + group + `,"_data":{"id":"` + grp + `","author":"` + adminJID + `","participants":["` + meJID + `"],"action":"remove"}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsRemoved, Participants: []string{meID}, Actor: adminJID}}},
		},
		"leave noweb: no author is a leave": {
			"NOWEB", "group.v2.leave",
			`{` + group + `,"_data":{"id":"` + grp + `","author":"","participants":["` + meJID + `"],"action":"remove"}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsLeft, Participants: []string{meID}}}},
		},
		"leave webjs: the notification type says remove": {
			"WEBJS", "group.v2.leave",
			`{` + group + `,"_data":{"id":{"remote":"` + grp + `"},"type":"remove","author":"` + admin + `","recipientIds":["` + meID + `"]}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsRemoved, Participants: []string{meID}, Actor: admin}}},
		},
		"leave webjs: the notification type says leave": {
			"WEBJS", "group.v2.leave",
			`{` + group + `,"_data":{"id":{"remote":"` + grp + `"},"type":"leave","author":"` + meID + `","recipientIds":["` + meID + `"]}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsLeft, Participants: []string{meID}, Actor: meID}}},
		},
		"leave without me names nobody": {
			"GOWS", "group.v2.leave", `{` + group + `,"_data":{"JID":"` + grp + `","Sender":"` + adminJID + `"}}`, "",
			fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsLeft, Actor: adminJID}}},
		},

		// GOWS group.v2.participants: ToGroupV2ParticipantsEvents maps both
		// a removal and a leave to "leave"; _data.Sender is who acted.
		"participants gows: leave by someone else is a removal": {
			"GOWS", "group.v2.participants",
			`{` + group + `,"type":"leave","participants":[{"id":"` + alice + `","pn":"` + alice + `","role":"left"}],` +
				`"_data":{"JID":"` + grp + `","Sender":"` + adminJID + `","Leave":["` + aliceJID + `"]}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsRemoved, Participants: []string{alice}, Actor: adminJID}}},
		},
		"participants gows: leave by themselves": {
			"GOWS", "group.v2.participants",
			`{` + group + `,"type":"leave","participants":[{"id":"` + alice + `","pn":"` + alice + `","role":"left"}],` +
				`"_data":{"JID":"` + grp + `","Sender":"` + aliceJID + `","Leave":["` + aliceJID + `"]}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsLeft, Participants: []string{alice}, Actor: aliceJID}}},
		},
		"participants gows: SenderPN matches a phone-number participant": {
			"GOWS", "group.v2.participants",
			`{` + group + `,"type":"leave","participants":[{"id":"` + alice + `","pn":"` + alice + `","role":"left"}],` +
				`"_data":{"JID":"` + grp + `","Sender":"` + aliceLID + `","SenderPN":"` + aliceJID + `"}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsLeft, Participants: []string{alice}, Actor: aliceJID}}},
		},
		"participants gows: join keeps its actor": {
			"GOWS", "group.v2.participants",
			`{` + group + `,"type":"join","participants":[{"id":"` + alice + `","pn":"` + alice + `","role":"participant"}],"_data":{"JID":"` + grp + `","Sender":"` + adminJID + `"}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsAdded, Participants: []string{alice}, Actor: adminJID}}},
		},

		// group.v2.update. WEBJS (devlikeapro/waha
		// src/core/engines/webjs/groups.webjs.ts ToGroupV2UpdateEvent, fed by
		// whatsapp-web.js's group_update): the whole GroupInfo (ToGroupInfo:
		// membersCanSendMessages = groupMetadata.announce, no restrict field),
		// and _data the GroupNotification (pedroslopez/whatsapp-web.js
		// src/structures/GroupNotification.js: type = msg.subtype, body =
		// msg.body || ""), whose type says what changed. What WhatsApp Web
		// puts in the body of a restrict or announce notification is not
		// documented (wwebjs issue "GroupNotification - when the type is
		// description body is empty" shows body "" for description), so the
		// announce setting comes from GroupInfo and restrict only from an
		// explicit on/off body.
		"update webjs subject: only the subject": {
			"WEBJS", "group.v2.update",
			`{"group":{"id":"` + grp + `","subject":"Team","description":"Rules","invite":"https://chat.whatsapp.com/X","membersCanAddNewMember":true,` +
				`"membersCanSendMessages":false,"newMembersApprovalRequired":false},"timestamp":1666943582,` +
				`"_data":{"id":{"remote":"` + grp + `"},"type":"subject","author":"` + admin + `","body":"Team","recipientIds":[]}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupSubjectChanged, Subject: "Team", Actor: admin}}},
		},
		"update webjs description": {
			"WEBJS", "group.v2.update",
			`{"group":{"id":"` + grp + `","subject":"Team","description":"New rules","membersCanAddNewMember":false,"membersCanSendMessages":false,"newMembersApprovalRequired":false},` +
				`"_data":{"id":{"remote":"` + grp + `"},"type":"description","author":"` + admin + `","recipientIds":[]}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupDescriptionChanged, Description: "New rules", Actor: admin}}},
		},
		"update webjs picture": {
			"WEBJS", "group.v2.update",
			`{"group":{"id":"` + grp + `","subject":"Team","description":""},"_data":{"type":"picture","author":"` + admin + `","recipientIds":[]}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupIconChanged, Actor: admin}}},
		},
		"update webjs announce on: members can no longer send": {
			"WEBJS", "group.v2.update",
			`{"group":{"id":"` + grp + `","subject":"Team","membersCanAddNewMember":true,"membersCanSendMessages":true},` +
				`"_data":{"type":"announce","author":"` + admin + `","body":"on","recipientIds":[]}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupSettingsChanged, Setting: setting("membersCanSendMessages", "false"), Actor: admin}}},
		},
		"update webjs restrict from the body": {
			"WEBJS", "group.v2.update",
			`{"group":{"id":"` + grp + `","subject":"Team","membersCanSendMessages":true},"_data":{"type":"restrict","author":"` + admin + `","body":"off","recipientIds":[]}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupSettingsChanged, Setting: setting("restrict", "false"), Actor: admin}}},
		},
		"update webjs restrict without a body tells nothing": {
			"WEBJS", "group.v2.update",
			`{"group":{"id":"` + grp + `","subject":"Team"},"_data":{"type":"restrict","author":"` + admin + `","body":"","recipientIds":[]}}`,
			me, fact.Facts{},
		},
		"update webjs of another type tells nothing": {
			"WEBJS", "group.v2.update",
			`{"group":{"id":"` + grp + `","subject":"Team","description":"Rules","membersCanAddNewMember":true,"membersCanSendMessages":false,"newMembersApprovalRequired":true},` +
				`"_data":{"type":"membership_approval_mode","author":"` + admin + `","recipientIds":[]}}`,
			me, fact.Facts{},
		},
		"update webjs without a notification tells nothing": {
			"WEBJS", "group.v2.update", `{"group":{"id":"` + grp + `","subject":"Team","membersCanSendMessages":false}}`, me, fact.Facts{},
		},
		"update whole info known by its notification shape, no engine": {
			"", "group.v2.update",
			`{"group":{"id":"` + grp + `","subject":"Team","description":"Rules"},"_data":{"id":{"remote":"` + grp + `"},"type":"subject","author":"` + admin + `","recipientIds":[]}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupSubjectChanged, Subject: "Team", Actor: admin}}},
		},
		// NOWEB (groups.noweb.ts ToGroupV2UpdateEvent): the changed fields
		// of Baileys' Partial<GroupMetadata>, membersCanSendMessages = announce.
		"update noweb announce off: members can send": {
			"NOWEB", "group.v2.update",
			`{"timestamp":1666943582000,"group":{"id":"` + grp + `","membersCanSendMessages":false},"_data":{"id":"` + grp + `","announce":false,"author":"` + adminJID + `"}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupSettingsChanged, Setting: setting("membersCanSendMessages", "true"), Actor: adminJID}}},
		},
		"update noweb restrict from the raw update": {
			"NOWEB", "group.v2.update",
			`{"group":{"id":"` + grp + `"},"_data":{"id":"` + grp + `","restrict":true}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupSettingsChanged, Setting: setting("restrict", "true")}}},
		},
		"update noweb known by its shape, no engine": {
			"", "group.v2.update",
			`{"group":{"id":"` + grp + `","membersCanSendMessages":true},"_data":{"id":"` + grp + `","announce":true}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupSettingsChanged, Setting: setting("membersCanSendMessages", "false")}}},
		},
		// GOWS (groups.gows.ts ToGroupInfoPartial): membersCanSendMessages = !Announce.IsAnnounce.
		"update gows announce: as sent": {
			"GOWS", "group.v2.update",
			`{"group":{"id":"` + grp + `","membersCanSendMessages":false},"_data":{"JID":"` + grp + `","Sender":"` + adminJID + `","Announce":{"IsAnnounce":true,"AnnounceVersionID":"1"}}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupSettingsChanged, Setting: setting("membersCanSendMessages", "false"), Actor: adminJID}}},
		},
		"update gows locked": {
			"GOWS", "group.v2.update",
			`{"group":{"id":"` + grp + `","subject":"S"},"_data":{"JID":"` + grp + `","Sender":"` + adminJID + `","Name":{"Name":"S"},"Locked":{"IsLocked":true}}}`,
			me, fact.Facts{Groups: []fact.GroupChange{
				{Chat: grp, Change: fact.GroupSubjectChanged, Subject: "S", Actor: adminJID},
				{Chat: grp, Change: fact.GroupSettingsChanged, Setting: setting("restrict", "true"), Actor: adminJID},
			}},
		},
		"update gows known by its shape, no engine": {
			"", "group.v2.update",
			`{"group":{"id":"` + grp + `","membersCanSendMessages":true},"_data":{"JID":"` + grp + `"}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupSettingsChanged, Setting: setting("membersCanSendMessages", "true")}}},
		},
		"update of an engine whose meaning is unknown leaves membersCanSendMessages out": {
			"WPP", "group.v2.update",
			`{"group":{"id":"` + grp + `","subject":"S","membersCanSendMessages":true},"_data":{}}`,
			me, fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupSubjectChanged, Subject: "S"}}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := interpret(t, wrapEngine(tc.engine, tc.event, tc.payload, tc.me))
			if err != nil {
				t.Fatalf("Interpret(%s, %s): %v", tc.event, tc.payload, err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Interpret(%s, %s) mismatch (-want +got):\n%s", tc.event, tc.payload, diff)
			}
		})
	}
}

func TestInterpretJoinRequestInvalid(t *testing.T) {
	for name, payload := range map[string]string{
		"no requester":  `{"group":{"id":"1@g.us"},"action":"created"}`,
		"no group":      `{"action":"created","requesterId":"9@lid"}`,
		"wrong type":    `{"group":{"id":"1@g.us"},"action":"created","requesterId":{"a":1}}`,
		"group no text": `{"group":"1@g.us","action":"created","requesterId":"9@lid"}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := interpret(t, wrapEngine("GOWS", "group.v2.participants.join-request", payload, ""))
			if !errors.Is(err, provider.ErrInvalid) {
				t.Fatalf("Interpret(%s) = %v; want an error wrapping ErrInvalid", payload, err)
			}
		})
	}
}
