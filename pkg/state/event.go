package state

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// CheckEvent refuses an event id that JSON cannot hold exactly: encoding
// replaces invalid UTF-8, and the registries must tell event ids apart.
// wahook's event ids are hex hashes, so this never fails in practice. The
// error has no package prefix: each backend adds its own.
func CheckEvent(eventID string) error {
	if eventID == "" {
		return errors.New("empty event id")
	}
	if !utf8.ValidString(eventID) {
		return fmt.Errorf("event id %q is not valid UTF-8", eventID)
	}
	return nil
}
