package derive_test

import (
	"testing"

	"github.com/wahook/wahook/pkg/derive"
)

// Derived event ids must stay the same across versions (a redelivered raw
// event derives the same ids): these were computed before id hashing was
// shared with the providers and must not change.
func TestIDsStayPinned(t *testing.T) {
	for _, tc := range []struct {
		raw   string
		parts []string
		want  string
	}{
		{"0123456789abcdef0123456789abcdef", nil, "3eb1bd439947eb762998e566ccc2e099"},
		{"0123456789abcdef0123456789abcdef", []string{"label.added", "76"}, "3054d2bb0c7474c9c25fa8750c351d36"},
		{"", []string{"", ""}, "96a296d224f285c67bee93c30f8a3091"},
	} {
		got := derive.ID(tc.raw, tc.parts...)
		if got != tc.want {
			t.Errorf("ID(%q, %q) = %s, want %s", tc.raw, tc.parts, got, tc.want)
		}
	}
}
