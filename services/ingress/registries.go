package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/wahook/wahook/pkg/backbone"
	"github.com/wahook/wahook/pkg/console"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/state"
)

// registries are the state's registries the console reads: those of the
// consumers when this ingress derives streams; else, on NATS, the state
// opened to read only (stateReader); else none.
type registries struct {
	labels  func() console.LabelLister
	chats   func() console.ChatLookup
	aliases func() console.AliasLookup
}

// consoleRegistries returns the registries for the console. deps are the
// consumers' (zero when this ingress derives nothing) and readState opens
// the state to read it (backbone.ReadState), nil where the broker offers
// no such state.
func consoleRegistries(deps consumer.Deps, readState func(ctx context.Context) (backbone.State, error)) registries {
	if deps.Labels != nil || readState == nil {
		l, _ := deps.Labels.(console.LabelLister)
		c, _ := deps.Chats.(console.ChatLookup)
		a, _ := deps.Aliases.(console.AliasLookup)
		return registries{
			labels:  func() console.LabelLister { return l },
			chats:   func() console.ChatLookup { return c },
			aliases: func() console.AliasLookup { return a },
		}
	}
	r := &stateReader{open: readState, retry: stateRetry}
	return registries{
		labels:  func() console.LabelLister { return readLabels{r} },
		chats:   func() console.ChatLookup { return readChats{r} },
		aliases: func() console.AliasLookup { return readAliases{r} },
	}
}

// stateRetry is how long a stateReader answers with its last failure
// before it tries to open the state again: pages do not each knock on a
// broker that has no state yet.
const stateRetry = 5 * time.Second

// stateReader opens the state when a page first reads it, and again after
// a failure once retry has passed, until it is open: the deriver may
// create it long after this ingress started.
type stateReader struct {
	open  func(ctx context.Context) (backbone.State, error)
	retry time.Duration

	mu      sync.Mutex
	st      *backbone.State
	err     error
	tried   time.Time
	pending chan struct{} // closed when the open in progress ends
}

// state returns the open state, or why it is not.
func (r *stateReader) state(ctx context.Context) (backbone.State, error) {
	r.mu.Lock()
	for r.pending != nil {
		// One open at a time; the others wait for its outcome.
		wait := r.pending
		r.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return backbone.State{}, ctx.Err()
		}
		r.mu.Lock()
	}
	if r.st != nil {
		defer r.mu.Unlock()
		return *r.st, nil
	}
	if r.err != nil && time.Since(r.tried) < r.retry {
		defer r.mu.Unlock()
		return backbone.State{}, r.err
	}
	r.pending = make(chan struct{})
	r.mu.Unlock()

	st, err := r.open(ctx)

	r.mu.Lock()
	defer r.mu.Unlock()
	close(r.pending)
	r.pending = nil
	if err != nil {
		if ctx.Err() == nil {
			// A page that ended is no answer about the state.
			r.err, r.tried = err, time.Now()
		}
		return backbone.State{}, err
	}
	r.st = &st
	return st, nil
}

// readLabels, readChats and readAliases read the registries of a
// stateReader's state, answering its failure to open while it has none.
type (
	readLabels  struct{ r *stateReader }
	readChats   struct{ r *stateReader }
	readAliases struct{ r *stateReader }
)

var errNotReadable = errors.New("the state's registries cannot be read")

func (l readLabels) lister(ctx context.Context) (console.LabelLister, error) {
	st, err := l.r.state(ctx)
	if err != nil {
		return nil, err
	}
	reg, ok := st.Labels.(console.LabelLister)
	if !ok {
		return nil, errNotReadable
	}
	return reg, nil
}

func (l readLabels) Channels(ctx context.Context) ([]state.ProviderChannel, error) {
	reg, err := l.lister(ctx)
	if err != nil {
		return nil, err
	}
	return reg.Channels(ctx)
}

func (l readLabels) List(ctx context.Context, provider, channel string) ([]state.Label, error) {
	reg, err := l.lister(ctx)
	if err != nil {
		return nil, err
	}
	return reg.List(ctx, provider, channel)
}

func (c readChats) Lookup(ctx context.Context, provider, channel, chat string) (state.Chat, bool, error) {
	st, err := c.r.state(ctx)
	if err != nil {
		return state.Chat{}, false, err
	}
	reg, ok := st.Chats.(console.ChatLookup)
	if !ok {
		return state.Chat{}, false, errNotReadable
	}
	return reg.Lookup(ctx, provider, channel, chat)
}

func (a readAliases) Lookup(ctx context.Context, provider, channel, id string) (string, bool, error) {
	st, err := a.r.state(ctx)
	if err != nil {
		return "", false, err
	}
	reg, ok := st.Aliases.(console.AliasLookup)
	if !ok {
		return "", false, errNotReadable
	}
	return reg.Lookup(ctx, provider, channel, id)
}
