package auth

import (
	"flag"
	"fmt"
	"strings"
	"time"
)

// Scheme is one provider's webhook authentication: the settings it reads
// and the verifier they make. Provider packages own theirs, so that the
// ingress learns a provider's auth from the provider alone.
type Scheme interface {
	// RegisterFlags adds the scheme's settings to fs.
	RegisterFlags(fs *flag.FlagSet)
	// Verifier returns the verifier of the settings given, nil when none
	// is set (the provider is then refused unless auth is disabled).
	Verifier() (Verifier, error)
}

// Handshaker is a Scheme whose provider checks its webhook URL first
// (provider.Challenger): the tokens that check may present, nil when none
// is set.
type Handshaker interface {
	VerifyTokens() (*VerifyTokens, error)
}

// Provider is implemented by provider packages whose webhooks carry
// credentials. AuthScheme returns a new Scheme each call.
type Provider interface {
	AuthScheme() Scheme
}

// List splits a comma-separated setting, dropping blank entries.
func List(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// secretFlag is one comma-separated list of secrets and the verifier it
// makes.
type secretFlag struct {
	name, usage string
	value       string
	build       func([]string) (Verifier, error)
}

func (f *secretFlag) RegisterFlags(fs *flag.FlagSet) { fs.StringVar(&f.value, f.name, "", f.usage) }

func (f *secretFlag) Verifier() (Verifier, error) {
	list := List(f.value)
	if len(list) == 0 {
		return nil, nil
	}
	v, err := f.build(list)
	if err != nil {
		return nil, fmt.Errorf("-%s: %w", f.name, err)
	}
	return v, nil
}

// Tokens is a scheme of shared secrets (TokenVerifier) set by flag name.
func Tokens(name, usage string) Scheme {
	return &secretFlag{name: name, usage: usage, build: func(l []string) (Verifier, error) { return NewTokenVerifier(l) }}
}

// Wawp is a scheme of Wawp's X-Wawp-Signature secrets (WawpVerifier).
func Wawp(name, usage string) Scheme {
	return &secretFlag{name: name, usage: usage, build: func(l []string) (Verifier, error) { return NewWawpVerifier(l) }}
}

// JWT is a scheme of Evolution API's jwt_key values (JWTVerifier).
func JWT(name, usage string) Scheme {
	return &secretFlag{name: name, usage: usage, build: func(l []string) (Verifier, error) { return NewJWTVerifier(l) }}
}

// HubSignature is a scheme of Meta app secrets (HubSignatureVerifier).
func HubSignature(name, usage string) Scheme {
	return &secretFlag{name: name, usage: usage, build: func(l []string) (Verifier, error) { return NewHubSignatureVerifier(l) }}
}

// HMAC is a scheme of WAHA's X-Webhook-Hmac keys (HMACVerifier) with the
// accepted clock skew as a second setting.
func HMAC(name, usage, skewName, skewUsage string) Scheme {
	h := &hmacScheme{skewName: skewName, skewUsage: skewUsage}
	h.keys = secretFlag{name: name, usage: usage, build: func(l []string) (Verifier, error) {
		v, err := NewHMACVerifier(l)
		if err != nil {
			return nil, err
		}
		v.MaxSkew = h.skew
		return v, nil
	}}
	return h
}

type hmacScheme struct {
	keys                secretFlag
	skewName, skewUsage string
	skew                time.Duration
}

func (h *hmacScheme) RegisterFlags(fs *flag.FlagSet) {
	h.keys.RegisterFlags(fs)
	fs.DurationVar(&h.skew, h.skewName, 0, h.skewUsage)
}

func (h *hmacScheme) Verifier() (Verifier, error) { return h.keys.Verifier() }

// AnyOf is a scheme accepting what any of schemes accepts, for providers
// with several kinds of secret; its verifier is the set ones', nil when
// none is set.
func AnyOf(schemes ...Scheme) Scheme { return anyScheme(schemes) }

type anyScheme []Scheme

func (a anyScheme) RegisterFlags(fs *flag.FlagSet) {
	for _, s := range a {
		s.RegisterFlags(fs)
	}
}

func (a anyScheme) Verifier() (Verifier, error) {
	var set AnyVerifier
	for _, s := range a {
		v, err := s.Verifier()
		if err != nil {
			return nil, err
		}
		if v != nil {
			set = append(set, v)
		}
	}
	switch len(set) {
	case 0:
		return nil, nil
	case 1:
		return set[0], nil
	}
	return set, nil
}

// VerifyTokens implements Handshaker when one of the schemes does.
func (a anyScheme) VerifyTokens() (*VerifyTokens, error) {
	for _, s := range a {
		if h, ok := s.(Handshaker); ok {
			return h.VerifyTokens()
		}
	}
	return nil, nil
}

// WithHandshake adds the verify tokens of a provider's URL check, set by
// flag name, to s.
func WithHandshake(s Scheme, name, usage string) Scheme {
	return &handshakeScheme{Scheme: s, name: name, usage: usage}
}

type handshakeScheme struct {
	Scheme
	name, usage string
	value       string
}

func (h *handshakeScheme) RegisterFlags(fs *flag.FlagSet) {
	h.Scheme.RegisterFlags(fs)
	fs.StringVar(&h.value, h.name, "", h.usage)
}

func (h *handshakeScheme) VerifyTokens() (*VerifyTokens, error) {
	list := List(h.value)
	if len(list) == 0 {
		return nil, nil
	}
	t, err := NewVerifyTokens(list)
	if err != nil {
		return nil, fmt.Errorf("-%s: %w", h.name, err)
	}
	return t, nil
}
