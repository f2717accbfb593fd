package natsbroker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestStartEmbeddedErrors(t *testing.T) {
	running := startServer(t, t.TempDir())
	busy := strings.TrimPrefix(running.ClientURL(), "nats://")
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	for name, tc := range map[string]struct {
		give    EmbeddedConfig
		wantErr string
	}{
		"no store dir":       {give: EmbeddedConfig{Addr: "127.0.0.1:-1"}, wantErr: "StoreDir is empty"},
		"bad addr":           {give: EmbeddedConfig{Addr: "localhost", StoreDir: t.TempDir()}, wantErr: "addr"},
		"port in use":        {give: EmbeddedConfig{Addr: busy, StoreDir: t.TempDir()}, wantErr: "listen"},
		"store not writable": {give: EmbeddedConfig{Addr: "127.0.0.1:-1", StoreDir: notDir}, wantErr: "not a directory"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			e, err := StartEmbedded(ctx, tc.give)
			if err == nil {
				e.Shutdown(ctx)
				t.Fatalf("StartEmbedded(%+v) = nil error, want one containing %q", tc.give, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("StartEmbedded(%+v) = %v, want an error containing %q", tc.give, err, tc.wantErr)
			}
		})
	}
}

func TestStartEmbeddedWildcardAddr(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := StartEmbedded(ctx, EmbeddedConfig{Addr: "0.0.0.0:-1", StoreDir: t.TempDir(), Logger: zap.New(core)})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	defer e.Shutdown(ctx)
	if !strings.HasPrefix(e.ClientURL(), "nats://127.0.0.1:") {
		t.Errorf("ClientURL() = %s, want a loopback URL for a wildcard listen address", e.ClientURL())
	}
	if logs.FilterMessageSnippet("Server is ready").Len() == 0 {
		t.Errorf("no nats-server startup log routed to zap; got %d entries", logs.Len())
	}
	if !e.Server().JetStreamEnabled() {
		t.Errorf("Server().JetStreamEnabled() = false")
	}
}
