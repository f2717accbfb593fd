// Package evolution reads Evolution API v2 webhooks (EvolutionAPI/evolution-api
// 2.3.x, its Baileys channel).
//
// A delivery is one event in the envelope
// {event, instance, data, destination, date_time, sender, server_url, apikey}
// (webhook.controller.ts). The channel is instance; the kind is event as
// sent (messages.upsert, labels.edit, group-participants.update...). With
// "webhook by events" the event is also appended to the URL
// (/v1/webhooks/evolution/messages-upsert); the body's event wins.
//
// apikey is the instance's API token when the server exposes it: Redact
// removes it before the body is stored anywhere. Times come from inside
// data (messageTimestamp, a call's date): date_time carries a "Z" even on
// servers that are not on UTC.
package evolution
