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
	key := it.Key
	if key == "" {
		k, err := ContentKey(it.Data)
		if err != nil {
			return "", err
		}
		key = k
	}
	h := sha256.New()
	for _, part := range [...]string{providerName, it.Channel, it.Kind, key} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16]), nil
}
