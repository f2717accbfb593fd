package provider

import (
	"strings"

	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/fact"
)

// MaxAliasDigits bounds the user part of an alias's ids. WhatsApp's LIDs
// have some 15 digits and phone numbers at most 15 (E.164); anything
// longer, or not digits, is no contact of WhatsApp's, and a payload naming
// one (a forged one can) must not grow the registry's values or memory.
const MaxAliasDigits = 20

// Aliases returns the LID↔phone aliases in pairs of ids a payload gives for
// one contact, canonical, leaving out the pairs that are not one hidden
// (…@lid) id and one phone-number id (either order), and repeats.
func Aliases(pairs ...[2]string) []fact.Alias {
	var out []fact.Alias
	for _, p := range pairs {
		al, ok := Alias(p[0], p[1])
		if ok && !containsAlias(out, al) {
			out = append(out, al)
		}
	}
	return out
}

// Alias returns the alias a and b give, in either order, canonical: ok only
// when one is a hidden (…@lid) id and the other a phone-number id, each of
// 1 to MaxAliasDigits digits.
func Alias(a, b string) (al fact.Alias, ok bool) {
	x, xt := chatid.Canonical(a)
	y, yt := chatid.Canonical(b)
	switch {
	case xt == chatid.LID && yt == chatid.Contact:
		al = fact.Alias{LID: x, Phone: y}
	case xt == chatid.Contact && yt == chatid.LID:
		al = fact.Alias{LID: y, Phone: x}
	default:
		return fact.Alias{}, false
	}
	return al, aliasUser(al.LID) && aliasUser(al.Phone)
}

// aliasUser reports whether a canonical id's user part is 1 to MaxAliasDigits
// ASCII digits.
func aliasUser(id string) bool {
	user, _, _ := strings.Cut(id, "@")
	if user == "" || len(user) > MaxAliasDigits {
		return false
	}
	for i := 0; i < len(user); i++ {
		if user[i] < '0' || user[i] > '9' {
			return false
		}
	}
	return true
}

func containsAlias(as []fact.Alias, a fact.Alias) bool {
	for _, o := range as {
		if o == a {
			return true
		}
	}
	return false
}
