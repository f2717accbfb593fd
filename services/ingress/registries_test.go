package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/backbone"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

func openBackbone(t *testing.T, cfg backbone.Config) *backbone.Backbone {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bb, err := backbone.Open(ctx, cfg, zap.NewNop())
	if err != nil {
		t.Fatalf("backbone.Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := bb.Close(ctx); err != nil {
			t.Errorf("backbone.Close: %v", err)
		}
	})
	return bb
}

// TestConsoleRegistriesReadOnly: an ingress deriving nothing reads the
// state once a deriver created it: "no state yet" before, asked of the
// broker once per retry period and once for pages asking together.
func TestConsoleRegistriesReadOnly(t *testing.T) {
	deriver := openBackbone(t, backbone.Config{Broker: "nats", NATSEmbeddedAddr: "127.0.0.1:-1", DataDir: t.TempDir(), NATSDuplicateWindow: time.Minute})
	reader := openBackbone(t, backbone.Config{Broker: "nats", NATSURL: deriver.Embedded.ClientURL(), NATSAuth: deriver.Embedded.ServiceAuth(),
		NATSDuplicateWindow: time.Minute})
	var opens atomic.Int64
	regs := consoleRegistries(consumer.Deps{}, func(ctx context.Context) (backbone.State, error) {
		opens.Add(1)
		return reader.ReadState(ctx)
	})
	r := regs.labels().(readLabels).r
	r.retry = time.Hour

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := regs.labels().Channels(t.Context()); !errors.Is(err, natsstate.ErrNoState) {
				t.Errorf("Channels before any deriver: %v; want natsstate.ErrNoState", err)
			}
		})
	}
	wg.Wait()
	if _, _, err := regs.chats().Lookup(t.Context(), "whapi", "CH", "1@s.whatsapp.net"); !errors.Is(err, natsstate.ErrNoState) {
		t.Errorf("chat Lookup before any deriver: %v; want natsstate.ErrNoState", err)
	}
	if n := opens.Load(); n != 1 {
		t.Errorf("state opened %d times within the retry period; want 1", n)
	}

	st, err := deriver.State(t.Context())
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	const lid, phone = "123456789012345@lid", "5511999999999@s.whatsapp.net"
	if _, _, err := st.Labels.Upsert(t.Context(), "whapi", "CH", fact.Label{ID: "7", Name: "VIP"}, "e1"); err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	if _, err := st.Chats.FirstSeen(t.Context(), "whapi", "CH", phone, "e1"); err != nil {
		t.Fatalf("FirstSeen: %v", err)
	}
	if err := st.Aliases.Learn(t.Context(), "whapi", "CH", lid, phone, "e1"); err != nil {
		t.Fatalf("Learn: %v", err)
	}
	if _, err := regs.labels().Channels(t.Context()); !errors.Is(err, natsstate.ErrNoState) {
		t.Errorf("Channels within the retry period: %v; want the last answer", err)
	}
	r.mu.Lock()
	r.retry = 0
	r.mu.Unlock()
	if ls, err := regs.labels().List(t.Context(), "whapi", "CH"); err != nil || len(ls) != 1 || ls[0].Name != "VIP" {
		t.Errorf("List once the state exists = %+v, %v; want VIP", ls, err)
	}
	if c, known, err := regs.chats().Lookup(t.Context(), "whapi", "CH", phone); err != nil || !known || c.FirstEvent != "e1" {
		t.Errorf("chat Lookup = %+v, %t, %v; want e1", c, known, err)
	}
	if other, ok, err := regs.aliases().Lookup(t.Context(), "whapi", "CH", phone); err != nil || !ok || other != lid {
		t.Errorf("alias Lookup = %q, %t, %v; want %s", other, ok, err, lid)
	}
	if n := opens.Load(); n != 2 {
		t.Errorf("state opened %d times; want 2: kept once open", n)
	}

	// Deriving in process: the consumers' own registries.
	own := consoleRegistries(consumer.Deps{Labels: st.Labels, Chats: st.Chats, Aliases: st.Aliases}, reader.ReadState)
	if any(own.labels()) != any(st.Labels) || any(own.chats()) != any(st.Chats) || any(own.aliases()) != any(st.Aliases) {
		t.Error("an ingress deriving streams does not show its consumers' registries")
	}
	// No state to read (Kafka): none.
	if none := consoleRegistries(consumer.Deps{}, nil); none.labels() != nil || none.chats() != nil || none.aliases() != nil {
		t.Error("registries where none can be read")
	}
}

// TestConsoleWithoutDeriving: an ingress deriving nothing says on its
// labels page that there is no state yet, then shows the registries a
// deriver on its broker wrote, and the chat's first sighting.
func TestConsoleWithoutDeriving(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsAddr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, adm, done := startBoth(t, ctx, "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-nats-embedded-addr", natsAddr,
		"-nats-user", "wahook", "-nats-password", "ingress-secret", "-data-dir", t.TempDir(), "-auth-disabled", "-log-level", "warn")
	await(t, adm+"/console/labels", 20*time.Second, "no state yet")

	deriver := openBackbone(t, backbone.Config{Broker: "nats", NATSURL: "nats://" + natsAddr, NATSDuplicateWindow: time.Minute,
		NATSAuth: natsbroker.Auth{User: "wahook", Password: "ingress-secret"}})
	st, err := deriver.State(t.Context())
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	const phone = "5511999999999@s.whatsapp.net"
	if _, _, err := st.Labels.Upsert(t.Context(), "whapi", "CH", fact.Label{ID: "7", Name: "VIP"}, "e1"); err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	if _, err := st.Chats.FirstSeen(t.Context(), "whapi", "CH", phone, "0123456789abcdef0123456789abcdef"); err != nil {
		t.Fatalf("FirstSeen: %v", err)
	}
	await(t, adm+"/console/labels", 20*time.Second, `data-label="7"`, "VIP")
	chat := await(t, adm+"/console/chat?chat=5511999999999&provider=whapi&channel=CH", 20*time.Second, `id="first-seen"`,
		`href="/console/event?id=0123456789abcdef0123456789abcdef&amp;range=15m"`)
	if strings.Contains(chat, "no state yet") {
		t.Errorf("chat page still says there is no state:\n%s", chat)
	}
	// Asked by the contact's hidden id: the sighting of its phone form.
	if err := st.Aliases.Learn(t.Context(), "whapi", "CH", "123456789012345@lid", phone, "e2"); err != nil {
		t.Fatalf("Learn: %v", err)
	}
	await(t, adm+"/console/chat?chat=123456789012345@lid&provider=whapi&channel=CH", 20*time.Second,
		`<p class="meta" id="chat-aliases">Also known as <code>`+phone+`</code>`, `id="first-event"`, "as <code>"+phone+"</code>, from the chat registry")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
