// Package whapi reads Whapi.Cloud webhooks.
//
// A delivery is {<collection>: [...], "event": {"type", "event"}, "channel_id"}
// ("method" is accepted in place of "event", as the OpenAPI Event schema
// names it). Each element of the collection is one item, of kind
// "{type}.{event}": messages.post/put/patch/delete, statuses.post/put,
// chats.post/put/patch/delete, contacts.post/patch, groups.post/put/patch,
// presences.post, labels.post/delete, calls.post, channel.post (health),
// channel.patch (qr), users.post/delete. The deprecated types message, ack
// and chat become messages, statuses and chats; "status" becomes statuses
// when the delivery carries a statuses array and channel otherwise (the
// OpenAPI maps it to channel). An unknown (type, event), or a delivery
// without its collection, yields items of kind unknown: one per element of
// each collection present, or the whole body as one item when it carries no
// collection or members Split does not recognise. Collections beside the
// kind's own become unknown items too, so nothing is dropped.
//
// Delivery modes: "body" (POST /v1/webhooks/whapi), "path"
// (POST .../whapi/{type}/{event}) and "method" (POST|PUT|PATCH|DELETE
// .../whapi/{type}, the method is the event). The body's "event" wins over
// the URL when both are given: it is what Whapi says about this very
// payload, while the URL only reflects the webhook's configured mode.
//
// Ids (Item.Key): messages by message id; statuses by id, status,
// recipient_id and viewer_id; calls by id and status (one call id runs
// through initiated, ringing, missed). Everything else has no event id and
// is identified by canonical content: two chats.patch label changes on one
// chat share chat id and timestamp, so only the content tells them apart.
//
// Times: messages and chats/groups timestamps in seconds, statuses in
// seconds as strings, calls in milliseconds, health at start_at + uptime.
// chats.patch and groups.patch carry the chat's last activity, not the
// change's time, so their items have none.
//
// Chats (Item.Chat, raw): messages chat_id; statuses chat_id else
// recipient_id; chats and groups id; *_updates after_update (else
// before_update) id; chats_removed and messages_removed_all the string;
// groups_participants group_id; calls chat_id; presences chat_id else
// contact_id; contacts id.
//
// Interpret: chats.patch with "labels" in changes gives the label lists
// before and after; labels.post an upsert; labels.delete a deletion named by
// id when all digits, else by name; chats.post a created chat; groups.post a
// created chat and group; groups.put participant changes; groups.patch
// subject, description, icon and settings changes; calls.post call states
// (initiated/ringing offered, answered accepted, canceled ended); messages a
// chat seen.
//
// Sources: OpenAPI "Whapi API" 1.8.7 (WebhookPayload and its schemas) and the
// help desk pages under https://support.whapi.cloud/help-desk/receiving/webhooks/
// (incoming-webhooks-format/*, detailed-webhook-settings).
package whapi
