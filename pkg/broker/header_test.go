package broker

import "testing"

func TestEscapeHeader(t *testing.T) {
	for give, want := range map[string]string{
		"whapi/MANTIS-M72HC/120363398750933550@g.us": "whapi/MANTIS-M72HC/120363398750933550@g.us",
		"canal com espaço":                           "canal%20com%20espa%C3%A7o",
		`say "100%"`:                                 "say%20%22100%25%22",
		"tab\tnewline\n":                             "tab%09newline%0A",
		"":                                           "",
	} {
		if got := EscapeHeader(give); got != want {
			t.Errorf("EscapeHeader(%q) = %q; want %q", give, got, want)
		}
		if back := UnescapeHeader(want); back != give {
			t.Errorf("UnescapeHeader(%q) = %q; want %q", want, back, give)
		}
	}
	for give, want := range map[string]string{
		"100%":   "100%",   // no digits follow
		"%zz":    "%zz",    // not hex
		"%FF%FE": "%FF%FE", // not UTF-8 once decoded
		"a%2":    "a%2",    // cut short
	} {
		if got := UnescapeHeader(give); got != want {
			t.Errorf("UnescapeHeader(%q) = %q; want %q", give, got, want)
		}
	}
}
