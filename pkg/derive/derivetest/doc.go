// Package derivetest helps test derived streams: in-memory LabelRegistry and
// ChatRegistry that are the reference for the semantics documented in
// package derive, conformance tests any other implementation (a JetStream KV
// or compacted-topic store) must pass, helpers that turn provider payloads
// into raw events and facts as the ingress and the consumer do, and a check
// of derived events against the contract and their JSON Schemas.
package derivetest
