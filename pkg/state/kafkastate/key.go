package kafkastate

import (
	"crypto/sha256"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/wahook/wahook/pkg/state"
)

// dedupKey is the key of one id in a deduplication scope.
func dedupKey(scope, id string) string {
	return state.Token(scope) + "." + state.Token(id)
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

// isNameKey reports whether key is a label name's record (state.NameKey):
// a label key and the token "n".
func isNameKey(key string) bool {
	base, ok := strings.CutSuffix(key, ".n")
	if !ok {
		return false
	}
	_, ok = labelPrefix(base)
	return ok
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
