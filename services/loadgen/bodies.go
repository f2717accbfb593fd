package main

import (
	"embed"
	"fmt"
	"os"
)

// The deliveries loadgen posts; {{seq}} in them is replaced by a number
// unique to each delivery, so that every one is a distinct event.
//
//   - message: a one-message Whapi delivery about a chat of its own,
//     identified by its message id
//   - chats.patch: a Whapi chat update (1.9 KB) about a chat of its own,
//     moving it from one label to another: no provider id, so the ingress
//     identifies it by its canonical content
//
//go:embed testdata/message.json testdata/chats.patch.json
var bodies embed.FS

// bodyKinds are the bodies' names, in the order the load test posts them.
var bodyKinds = []string{"message", "chats.patch"}

// loadBody returns the delivery of kind, or the contents of file when set.
func loadBody(kind, file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
		return b, nil
	}
	b, err := bodies.ReadFile("testdata/" + kind + ".json")
	if err != nil {
		return nil, fmt.Errorf("body kind %q: want message or chats.patch", kind)
	}
	return b, nil
}
