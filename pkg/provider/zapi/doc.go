// Package zapi reads Z-API webhook callbacks: one flat JSON object per
// request, told apart by "type". Split returns exactly one item whose Data is
// the whole body; a JSON object without a "type" string is not a callback.
//
// Kinds (the type is matched case-insensitively; the attribute table spells
// it "ReceivedCallBack"):
//   - ReceivedCallback: "received.notification" when "notification" is a
//     non-empty string; else "received.<content key>" for the first content
//     member holding an object or array, in this precedence: reaction,
//     pollVote, poll, eventResponse, event, buttonsResponseMessage,
//     listResponseMessage, buttonsMessage, hydratedTemplate, carouselMessage,
//     pixKeyMessage, pinMessage, newsletterAdminInvite, requestPayment,
//     sendPayment, reviewAndPay, reviewOrder, order, product, image, video,
//     audio, document, sticker, contact, location, text, statusImage (a
//     status reply carries its text and the statusImage it answers);
//     "received.waitingMessage" for the "waiting for this message"
//     placeholder without content; else provider.KindUnknown.
//   - MessageStatusCallback "message-status", DeliveryCallback "delivery",
//     PresenceChatCallback "presence-chat", ConnectedCallback "connected",
//     DisconnectedCallback "disconnected"; any other type provider.KindUnknown.
//
// Channel is instanceId (the last one when given twice, as encoding/json
// does). Time is momment, told by magnitude: milliseconds in most examples,
// seconds in the DisconnectedCallback one. A momment before 2009 or more than
// a day ahead of the receiving clock (the ConnectedCallback example's
// placeholder 26151515154, the year 2798) is no time: the item has none.
//
// Keys: a received message is "<phone>|<messageId>", plus "|<notification>",
// "|waiting" for the placeholder (the real message reuses its id) and
// "|edit|<canonical content hash>" when isEdit (edits reuse the id); a status
// is "<status>|<phone>[|<participant>]|<sorted ids and id>"; a delivery
// "<zaapId>|<messageId>" plus "|error" on failure. Presence, connection
// events and anything without those ids are identified by canonical content.
//
// Chat is phone as written: digits for 1:1 chats, "<id>-group",
// "<id>@newsletter", "<n>-broadcast". Connection events, label associations
// and profile notifications carry the instance's own number there: no chat.
//
// Interpret gives a chat seen (name chatName, direction from fromMe) for
// every message, for call and group notifications, and, as outgoing, for a
// delivery report without error; never for status@broadcast stories. Other
// notifications (encryption and business notices, deletions, channel roles,
// payments, profile changes, label associations) are not conversation and
// say nothing of direction. CALL_VOICE is a call offered, CALL_MISSED_VOICE
// and CALL_MISSED_VIDEO missed ones (callId, else messageId, is the call id).
// CHAT_LABEL_ASSOCIATION gives one label put on or taken off per
// notificationParameters element. Group notifications read as GROUP_CREATE
// created (subject from the parameters, else chatName),
// GROUP_PARTICIPANT_ADD/REMOVE/LEAVE/PROMOTE/DEMOTE, GROUP_PARTICIPANT_INVITE
// (joined through the invite link) participants added with request method
// "invite_link", GROUP_CHANGE_SUBJECT/DESCRIPTION/ICON,
// MEMBERSHIP_APPROVAL_REQUEST join requested, REVOKED_MEMBERSHIP_REQUESTS
// join revoked, GROUP_MEMBER_LINK_PROPERTY_UPDATE setting member_link_mode
// and other GROUP_CHANGE_* settings; the actor is participantPhone (else
// participantLid). Only the calls, label and membership notifications have
// documented payloads; the other group names are WhatsApp's message stub
// types, which the notification list describes without naming.
//
// Sources: Z-API docs, repository Z-API/z-api-docs docs/webhooks/
// (on-message-received, on-message-received-notify-fromme,
// on-whatsapp-message-status-changes, on-message-send, on-chat-presence,
// on-webhook-connected, on-whatsapp-disconnected) and the live pages under
// https://developer.z-api.io/en/webhooks/.
package zapi
