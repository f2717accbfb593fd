package state_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/state"
)

func TestLearnAlias(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.FixedZone("x", 3600))
	clash, next := state.LearnAlias(nil, "5544@s.whatsapp.net", "ev1", now)
	if clash || next == nil || *next != (state.Alias{ID: "5544@s.whatsapp.net", FirstEvent: "ev1", LearntAt: now.UTC()}) {
		t.Fatalf("LearnAlias(nil) = %v, %+v; want the record for ev1", clash, next)
	}
	for _, tc := range []struct {
		other string
		clash bool
	}{{"5544@s.whatsapp.net", false}, {"5511@s.whatsapp.net", true}} {
		clash, again := state.LearnAlias(next, tc.other, "ev2", now)
		if clash != tc.clash || again != nil {
			t.Errorf("LearnAlias(known, %s) = %v, %+v; want %v and no write", tc.other, clash, again, tc.clash)
		}
	}
}

func TestAliasKey(t *testing.T) {
	if k := state.AliasKey("waha", "default", "123@lid"); k != "waha.default.123_40lid.a" {
		t.Errorf("AliasKey = %q", k)
	}
	// One token more than any chat key, and bounded like them.
	long := state.AliasKey("waha", "default", strings.Repeat("9", 5000)+"@lid")
	if n := strings.Count(long, "."); n != 3 || len(long) > 100 {
		t.Errorf("AliasKey of a long id = %q (%d dots, %d bytes)", long, n, len(long))
	}
}
