// Package chatid normalises WhatsApp chat ids so that one chat has one id
// whatever the provider wrote: users as {digits}@s.whatsapp.net, groups as
// {id}@g.us, channels as {id}@newsletter, hidden ids as {id}@lid and broadcast
// lists as {id}@broadcast.
package chatid

import "strings"

// Type is the kind of chat an id names.
type Type string

// Chat types, as written in derived events' chat_type.
const (
	Contact    Type = "contact"
	Group      Type = "group"
	Newsletter Type = "newsletter"
	Broadcast  Type = "broadcast"
	LID        Type = "lid"
	Unknown    Type = ""
)

// Server parts of canonical ids.
const (
	userServer       = "s.whatsapp.net"
	groupServer      = "g.us"
	newsletterServer = "newsletter"
	lidServer        = "lid"
	broadcastServer  = "broadcast"
)

// Canonical returns the canonical form of a provider's chat or participant
// id and its type. Ids it does not recognise are returned trimmed, with type
// Unknown, so nothing is lost.
func Canonical(raw string) (string, Type) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", Unknown
	}
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		user, server := s[:at], strings.ToLower(s[at+1:])
		switch server {
		case "c.us", userServer:
			if d, ok := phone(stripDevice(user)); ok {
				return d + "@" + userServer, Contact
			}
			return stripDevice(user) + "@" + userServer, Contact
		case groupServer:
			return user + "@" + groupServer, Group
		case newsletterServer:
			return user + "@" + newsletterServer, Newsletter
		case lidServer:
			return stripDevice(user) + "@" + lidServer, LID
		case broadcastServer:
			return user + "@" + broadcastServer, Broadcast
		}
		return s, Unknown
	}
	switch {
	case strings.HasSuffix(s, "-group"):
		return strings.TrimSuffix(s, "-group") + "@" + groupServer, Group
	case strings.HasSuffix(s, "-broadcast"):
		return strings.TrimSuffix(s, "-broadcast") + "@" + broadcastServer, Broadcast
	}
	if d, ok := phone(s); ok {
		return d + "@" + userServer, Contact
	}
	if isOldGroup(s) {
		return s + "@" + groupServer, Group
	}
	return s, Unknown
}

// ID returns only the canonical id of raw.
func ID(raw string) string {
	id, _ := Canonical(raw)
	return id
}

// stripDevice drops the ":device" suffix of a multi-device user part
// (e.g. "5511999999999:12").
func stripDevice(user string) string {
	if i := strings.IndexByte(user, ':'); i >= 0 {
		return user[:i]
	}
	return user
}

// phone reports whether s is a phone number (digits, optionally after a
// leading '+') and returns its digits.
func phone(s string) (string, bool) {
	s = strings.TrimPrefix(s, "+")
	if s == "" {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	return s, true
}

// isOldGroup reports the legacy group id shape "{creator}-{timestamp}".
func isOldGroup(s string) bool {
	i := strings.IndexByte(s, '-')
	if i <= 0 || i == len(s)-1 || strings.Count(s, "-") != 1 {
		return false
	}
	for _, c := range s[:i] + s[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
