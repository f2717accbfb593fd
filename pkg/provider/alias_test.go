package provider_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
)

func TestAliases(t *testing.T) {
	got := provider.Aliases(
		[2]string{"123456789012345:3@lid", "5544999999999@c.us"},
		[2]string{"5544999999999:2@s.whatsapp.net", "123456789012345@lid"},     // the same, other order
		[2]string{"5511888888888@s.whatsapp.net", ""},                          // no pair
		[2]string{"1@lid", "2@lid"},                                            // two LIDs
		[2]string{"120363041234567890@g.us", "3@lid"},                          // a group
		[2]string{"777@lid", "5511777777777"},                                  // bare digits are a phone
		[2]string{"x@lid", "5511666666666@s.whatsapp.net"},                     // not digits
		[2]string{"5@lid", "5511abc@s.whatsapp.net"},                           // not digits
		[2]string{"123456789012345678901@lid", "5511555555555@s.whatsapp.net"}, // too long
		[2]string{"4@lid", "5511444444444" + strings.Repeat("4", 1<<10)},       // too long
	)
	want := []fact.Alias{
		{LID: "123456789012345@lid", Phone: "5544999999999@s.whatsapp.net"},
		{LID: "777@lid", Phone: "5511777777777@s.whatsapp.net"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Aliases mismatch (-want +got):\n%s", diff)
	}
}
