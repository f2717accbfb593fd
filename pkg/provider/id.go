package provider

import (
	"crypto/sha256"
	"encoding/hex"
)

// EventID returns the deterministic CloudEvent id of an item: a hash of the
// provider, channel, kind and the item's own identity (Key, else its
// canonical content). The same delivery twice gives the same ids, so the
// broker's duplicate window and subscribers drop retries.
func EventID(providerName string, it Item) (string, error) {
	if it.Key != "" {
		// The empty last part ends the hashed bytes with a NUL, as ids
		// stored by earlier versions were hashed.
		return HashID(providerName, it.Channel, it.Kind, it.Key, ""), nil
	}
	// HashID of the same parts, the content key written in place: the
	// key is never kept, so it is not made a string.
	var buf [256]byte
	b := append(append(buf[:0], providerName...), 0)
	b = append(append(b, it.Channel...), 0)
	b = append(append(b, it.Kind...), 0)
	b, err := appendContentKey(b, it.Data)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append(b, 0))
	var id [32]byte
	hex.Encode(id[:], sum[:16])
	return string(id[:]), nil
}

// HashID returns the id of parts: the first 16 bytes, in hex, of their
// Sum. Every id wahook derives (raw and derived events, dead letters) is
// one, so they share one way of hashing that must never change: stored
// ids, and the duplicate windows that drop retries, depend on it.
func HashID(parts ...string) string {
	sum := Sum(parts...)
	var id [32]byte
	hex.Encode(id[:], sum[:16])
	return string(id[:])
}

// Sum returns the SHA-256 of parts joined by NUL bytes: the hash of every
// id and content key. Parts that cannot hold a NUL (names, ids, a
// canonical JSON form) cannot then be confused with other parts.
func Sum[T string | []byte](parts ...T) [sha256.Size]byte {
	n := len(parts)
	for _, p := range parts {
		n += len(p)
	}
	if len(parts) == 1 {
		return sha256.Sum256([]byte(parts[0]))
	}
	// Short parts, the usual case, are joined on the stack and hashed in
	// one call; long ones (a dead letter's body) are streamed.
	var buf [256]byte
	if n <= len(buf) {
		b := buf[:0]
		for i, p := range parts {
			if i > 0 {
				b = append(b, 0)
			}
			b = append(b, p...)
		}
		return sha256.Sum256(b)
	}
	h := sha256.New()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
