// Package meta reads webhooks of Meta's WhatsApp Cloud API (Graph API
// webhooks of the whatsapp_business_account object):
// {object, entry: [{id, changes: [{field, value}]}]}, batched: one delivery
// holds entries of changes, each of which may hold many elements.
//
// Split gives one item per element: a message, a status, a call, a call's
// status, a group event, a value-level error; a change of another field
// (account_update, message_template_status_update, ...) is one item of its
// own. A delivery whose items' data would pass four times its size and
// 1 MiB (a large member every element repeats) is refused. Each item's
// Data is itself a Meta delivery of one entry, one change
// and one element: the entry's id, the change's field, the value's members
// other than element arrays (messaging_product, metadata) and, for messages
// and calls, the contacts that name the element's sender. So an item reads
// alone, and splitting it again gives itself.
//
// Kinds follow the change's field and the element: in the "messages" field,
// the element's array (messages, statuses, errors); in other fields, the
// field for its own elements (calls, group_lifecycle_update,
// group_participants_update, group_settings_update, group_status_update)
// and field.array for the others (calls.statuses, calls.errors); a change
// without elements, the field. A field this package does not know is
// provider.KindUnknown.
//
// Channel is value.metadata.phone_number_id, an opaque string; a change
// without it (account_update and other changes about the account) has the
// WhatsApp Business Account id, entry.id. Ids: a
// message's wamid; a status's wamid (or wacid) and status, since one message
// has several; a call's wacid and event; a group event's type, group and
// request id when it has one; else the item's canonical content. Time: the
// element's timestamp (seconds, as a string). Chat: a message's group_id or
// from, a status's recipient_id, a call's user (from when the user called,
// to when the business did), a group event's group_id; ids are kept as
// written (Meta writes users as digits).
//
// Sources: Meta's webhook payload reference and examples for the messages
// field (developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples),
// the Calling API's webhooks
// (developers.facebook.com/docs/whatsapp/cloud-api/calling/reference#call-webhooks)
// and the Groups API's webhooks
// (developers.facebook.com/docs/whatsapp/cloud-api/groups/webhooks).
package meta
