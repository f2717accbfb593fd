package chatid

import "testing"

func TestCanonical(t *testing.T) {
	tests := []struct {
		provider, give string
		want           string
		wantType       Type
	}{
		{"whapi", "919984351847@s.whatsapp.net", "919984351847@s.whatsapp.net", Contact},
		{"whapi", "120363271212442249@g.us", "120363271212442249@g.us", Group},
		{"whapi", "120363171744447809@newsletter", "120363171744447809@newsletter", Newsletter},
		{"whapi", "status@broadcast", "status@broadcast", Broadcast},
		{"whapi", "61280155346", "61280155346@s.whatsapp.net", Contact},
		{"zapi", "5544999999999", "5544999999999@s.whatsapp.net", Contact},
		{"zapi", "+5544999999999", "5544999999999@s.whatsapp.net", Contact},
		{"zapi", "120363019502650977-group", "120363019502650977@g.us", Group},
		{"zapi", "5544999999999-1623281429-group", "5544999999999-1623281429@g.us", Group},
		{"zapi", "1774895799-broadcast", "1774895799@broadcast", Broadcast},
		{"zapi", "5544999999999@newsletter", "5544999999999@newsletter", Newsletter},
		{"zapi", "81896604192873@lid", "81896604192873@lid", LID},
		{"waha", "11111111111@c.us", "11111111111@s.whatsapp.net", Contact},
		{"waha", "11111111111@C.US", "11111111111@s.whatsapp.net", Contact},
		{"waha", "11111111111:12@c.us", "11111111111@s.whatsapp.net", Contact},
		{"waha", "123@lid", "123@lid", LID},
		// A LID with a device part names the same contact as without it.
		{"evolution", "27033333333333:4@lid", "27033333333333@lid", LID},
		{"waha", "1234567890@g.us", "1234567890@g.us", Group},
		{"legacy", "5544999999999-1623281429", "5544999999999-1623281429@g.us", Group},
		{"any", "  5544999999999  ", "5544999999999@s.whatsapp.net", Contact},
		{"any", "", "", Unknown},
		{"any", "stories", "stories", Unknown},
		{"any", "someone@example.org", "someone@example.org", Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.provider+"/"+tt.give, func(t *testing.T) {
			got, gotType := Canonical(tt.give)
			if got != tt.want || gotType != tt.wantType {
				t.Errorf("Canonical(%q) = %q, %q; want %q, %q", tt.give, got, gotType, tt.want, tt.wantType)
			}
			if again, _ := Canonical(got); again != got {
				t.Errorf("Canonical(%q) = %q; canonical ids must be fixed points", got, again)
			}
		})
	}
}
