// Package waha reads webhooks of WAHA (devlikeapro/waha) and of WAHA-based
// hosts such as Wawp: one event per request, the envelope
// {id?, timestamp?, session, metadata?, engine?, event, payload, me?, environment?}.
//
// Kinds are WAHA's event names (session.status, message, message.any,
// message.reaction, message.ack, label.upsert, label.chat.added, call.received,
// group.v2.participants, ...; the list of WAHAEvents in
// src/structures/enums.dto.ts); any other event name is provider.KindUnknown.
// Wawp's flat session-status body {instance_id, status, qr, ts}, which has no
// event, is kind session.status.
//
// Channel is the envelope's session (instance_id in the flat variant).
// Ids: the envelope id (evt_...) when present; else the payload's own id
// where it names one event (message id, with the ack level for acks and the
// emoji for reactions; call id; poll vote id); else the item's canonical
// content. Time: the envelope timestamp (milliseconds), else the payload
// timestamp (seconds in the docs, milliseconds from some engines: told by
// magnitude). Chat: payload chatId, else a group's id, else a message's from
// (to when fromMe), else the chat part of a serialized message id
// ("false_<chat>_<id>"); ids are kept as written (…@c.us, …@g.us, …@lid).
// A call's chat is its from (GOWS: whatsmeow's From, as WAHA sets it), else
// GOWS's _data.CallCreator.
//
// Interpret also reads the envelope's engine (which engine's meaning a
// group setting has, and whether a group update is the whole group) and me
// (the session's own ids: who left in group.v2.leave).
//
// Wawp's documentation and WAHA's DTOs disagree on several payloads (label
// wrapping, chatId against group.id, action against type, arrays rendered as
// {"0": …} objects): Interpret accepts both.
//
// Sources: WAHA src/structures/{webhooks.dto,enums.dto,calls.dto,labels.dto,
// chats.dto,groups.events.dto}.ts and its engines' group mappers; Wawp's
// per-event pages https://api.wawp.net/en/docs/<event> and the session
// lifecycle guide https://docs.wawp.net/wawps-session-lifecycle-1300479m0.
package waha
