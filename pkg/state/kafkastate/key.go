package kafkastate

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/segmentio/kafka-go"
)

// maxPlainPart is the longest part encoded byte by byte; longer parts are
// hashed. Kafka keys could be longer, but keys equal to natsstate's let one
// tool read both backends, and a bounded key bounds the memory a key costs.
const maxPlainPart = 64

const upperHex = "0123456789ABCDEF"

// token encodes one key part as natsstate does: [A-Za-z0-9-] kept, any
// other byte '_' and two upper-case hex digits, "" as "=", a part over 64
// bytes "=" and its hex SHA-256. It is injective (up to SHA-256
// collisions) and never yields '.', so '.' separates the parts of a key.
func token(s string) string {
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

// channelPrefix is the key prefix shared by one channel's entries.
func channelPrefix(provider, channel string) string {
	return token(provider) + "." + token(channel)
}

// entryKey is the key of one item (a label id, a chat id) of a channel.
func entryKey(provider, channel, item string) string {
	return channelPrefix(provider, channel) + "." + token(item)
}

// dedupKey is the key of one id in a deduplication scope.
func dedupKey(scope, id string) string {
	return token(scope) + "." + token(id)
}

// labelPrefix returns the channel prefix of a label key (its first two
// tokens).
func labelPrefix(key string) (string, bool) {
	i := strings.LastIndexByte(key, '.')
	if i <= 0 || strings.Count(key[:i], ".") != 1 {
		return "", false
	}
	return key[:i], true
}

// hashKey is the in-memory identity of a key or id token: 16 bytes of its
// SHA-256, so that a million chats or ids cost 16 bytes each, not their
// encoded length. A collision needs about 2^64 keys.
type hashKey [16]byte

func hashOf(s string) hashKey {
	sum := sha256.Sum256([]byte(s))
	var h hashKey
	copy(h[:], sum[:16])
	return h
}

// partitionOf is the partition among parts (0 to n-1) that holds records
// hashed by what: the Java client's default partitioner (murmur2 of the
// bytes), so that other clients and tools agree on where a key lives.
func partitionOf(what string, parts []int) int {
	return kafka.Murmur2Balancer{Consistent: true}.Balance(kafka.Message{Key: []byte(what)}, parts...)
}
