package provider

// Channels and kinds come from the payload (or the URL) and travel in broker
// subjects, CloudEvent headers, sources and partition keys. These rules are
// the ingress's bounds on them, the same for every provider: one rule in one
// place, so that no provider's field can make a subject or header the broker
// refuses (nats-server closes the connection on a control line over 4 KB).

// MaxChannelBytes bounds a channel's length.
const MaxChannelBytes = 128

// MaxKindBytes bounds a kind's length.
const MaxKindBytes = 64

// channelBytes are the bytes a channel may hold: ASCII letters and digits
// and "-_.:@+=~". Every channel form documented by the providers fits
// (Whapi "MANTIS-M72HC", Z-API hex ids and the docs' placeholder
// "instance.id", WAHA "default", Wawp "123456789", Meta phone number ids).
// Left out: white space, control and non-ASCII bytes, '/' (it separates the
// parts of a partition key), NATS wildcards '*' and '>', and the characters
// URLs, headers and shells treat specially.
var channelBytes = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range []byte("-_.:@+=~") {
		t[c] = true
	}
	return t
}()

// ValidChannel reports whether s is a channel the ingress accepts: 1 to
// MaxChannelBytes bytes, each an ASCII letter or digit or one of "-_.:@+=~".
func ValidChannel(s string) bool {
	if len(s) == 0 || len(s) > MaxChannelBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !channelBytes[s[i]] {
			return false
		}
	}
	return true
}

// ValidKind reports whether kind is a bounded event kind: 1 to MaxKindBytes
// bytes of dot-separated, non-empty words of ASCII letters, digits, '-' and
// '_' ("chats.patch", "group.v2.participants.join-request"). Each word is a
// subject token as it is; an item whose kind fails is published as
// KindUnknown.
func ValidKind(kind string) bool {
	if len(kind) == 0 || len(kind) > MaxKindBytes {
		return false
	}
	prev := byte('.')
	for i := 0; i < len(kind); i++ {
		c := kind[i]
		switch {
		case c == '.':
			if prev == '.' {
				return false
			}
		case !wordByte(c):
			return false
		}
		prev = c
	}
	return prev != '.'
}

func wordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}
