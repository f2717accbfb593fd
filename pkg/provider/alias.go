package provider

import (
	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/fact"
)

// Aliases returns the LID↔phone aliases in pairs of ids a payload gives for
// one contact, canonical, leaving out the pairs that are not one hidden
// (…@lid) id and one phone-number id (either order), and repeats.
func Aliases(pairs ...[2]string) []fact.Alias {
	var out []fact.Alias
	for _, p := range pairs {
		a, at := chatid.Canonical(p[0])
		b, bt := chatid.Canonical(p[1])
		var al fact.Alias
		switch {
		case at == chatid.LID && bt == chatid.Contact:
			al = fact.Alias{LID: a, Phone: b}
		case at == chatid.Contact && bt == chatid.LID:
			al = fact.Alias{LID: b, Phone: a}
		default:
			continue
		}
		dup := false
		for _, o := range out {
			dup = dup || o == al
		}
		if !dup {
			out = append(out, al)
		}
	}
	return out
}
