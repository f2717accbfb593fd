package state

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// maxPlainPart is the longest part encoded byte by byte; longer parts are
// hashed so a key never outgrows a NATS subject (the server's 4 KiB control
// line also carries the reply subject) and a bounded key bounds the memory
// a key costs, whatever ids a payload carries.
const maxPlainPart = 64

const upperHex = "0123456789ABCDEF"

// Token encodes one key part as a single key token: see the package
// documentation for the scheme and why it is injective.
func Token(s string) string {
	switch {
	case s == "":
		return "="
	case len(s) > maxPlainPart:
		sum := sha256.Sum256([]byte(s))
		return "=" + hex.EncodeToString(sum[:])
	}
	plain := true
	for i := 0; i < len(s); i++ {
		if !keep(s[i]) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) * 3)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keep(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&0x0f])
	}
	return b.String()
}

// keep reports whether byte c stands for itself in a token. '_' and '=' are
// escapes and '.' separates tokens, so none of them is kept.
func keep(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-'
}

// ChannelPrefix is the key prefix shared by one channel's entries.
func ChannelPrefix(provider, channel string) string {
	return Token(provider) + "." + Token(channel)
}

// EntryKey is the key of one item (a label id, a chat id) of a channel.
func EntryKey(provider, channel, item string) string {
	return ChannelPrefix(provider, channel) + "." + Token(item)
}

// Untoken inverts Token for the parts it does not hash: false for a hashed
// part (longer than 64 bytes) or for text Token never yields.
func Untoken(tok string) (string, bool) {
	if tok == "=" {
		return "", true
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case keep(c):
			b.WriteByte(c)
		case c == '_' && i+2 < len(tok):
			hi, lo := unhex(tok[i+1]), unhex(tok[i+2])
			if hi < 0 || lo < 0 {
				return "", false
			}
			b.WriteByte(byte(hi<<4 | lo))
			i += 2
		default:
			return "", false
		}
	}
	return b.String(), true
}

// unhex is the value of an upper-case hex digit, -1 for any other byte.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// ProviderChannel is one channel of a provider, as a registry lists it.
type ProviderChannel struct {
	Provider string `json:"provider"`
	Channel  string `json:"channel"`
}

// ParseChannelPrefix returns the provider and channel of a ChannelPrefix;
// false when either part was hashed (a channel of more than 64 bytes).
func ParseChannelPrefix(prefix string) (ProviderChannel, bool) {
	p, c, ok := strings.Cut(prefix, ".")
	if !ok || strings.Contains(c, ".") {
		return ProviderChannel{}, false
	}
	prov, ok1 := Untoken(p)
	ch, ok2 := Untoken(c)
	if !ok1 || !ok2 {
		return ProviderChannel{}, false
	}
	return ProviderChannel{Provider: prov, Channel: ch}, true
}
