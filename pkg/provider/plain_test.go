package provider

import "github.com/wahook/wahook/pkg/fact"

// plain is a provider with no routes of its own.
type plain struct{}

func (plain) Name() string                                 { return "plain" }
func (plain) Split([]byte, Delivery) ([]Item, error)       { return nil, nil }
func (plain) Interpret(string, []byte) (fact.Facts, error) { return fact.Facts{}, nil }
