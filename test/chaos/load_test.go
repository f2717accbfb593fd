package chaos

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// secrets are the providers' webhook secrets the ingress is started with;
// the senders authenticate as each provider does.
type secrets struct {
	whapi, zapi, waha, meta, evolution string
}

func newSecrets() secrets {
	return secrets{whapi: randomHex(16), zapi: randomHex(16), waha: randomHex(32), meta: randomHex(32), evolution: randomHex(16)}
}

// env configures the ingress with the secrets.
func (s secrets) env() []string {
	return []string{
		"WAHOOK_AUTH_WHAPI_TOKENS=" + s.whapi,
		"WAHOOK_AUTH_ZAPI_TOKENS=" + s.zapi,
		"WAHOOK_AUTH_WAHA_HMAC_KEYS=" + s.waha,
		"WAHOOK_AUTH_META_APP_SECRETS=" + s.meta,
		"WAHOOK_AUTH_EVOLUTION_TOKENS=" + s.evolution,
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.UintN(256))
	}
	return hex.EncodeToString(b)
}

// loadConfig shapes the senders.
type loadConfig struct {
	// rate caps new deliveries per second over all senders; retries are
	// paced by each sender's backoff instead.
	rate int
	// labelSenders each own a Whapi channel's labels; chatSenders make new
	// chats.
	labelSenders, chatSenders int
	// labelEvery spaces two deliveries of one label channel: all of a
	// channel's label events have one key, which consumers take one at a
	// time, so a key must not get more than they can do in order.
	labelEvery time.Duration
	// giveUp is how long a sender retries one delivery before it gives up,
	// as a provider eventually does: a failure of the run.
	giveUp time.Duration
}

// load is the senders at work.
type load struct {
	cfg     loadConfig
	url     string
	sec     secrets
	client  *http.Client
	stopped chan struct{}
	tokens  chan struct{}
	wg      sync.WaitGroup
	ticker  sync.WaitGroup

	mu       sync.Mutex
	statuses map[string]int
}

// startLoad starts the senders against the ingress at url.
func startLoad(ctx context.Context, url string, sec secrets, w *workload, cfg loadConfig) *load {
	l := &load{
		cfg: cfg, url: url, sec: sec,
		client: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: cfg.labelSenders + cfg.chatSenders, IdleConnTimeout: 30 * time.Second},
		},
		stopped:  make(chan struct{}),
		tokens:   make(chan struct{}, max(1, cfg.rate/20)),
		statuses: map[string]int{},
	}
	l.ticker.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(cfg.rate))
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				select {
				case l.tokens <- struct{}{}:
				default:
				}
			case <-l.stopped:
				return
			}
		}
	})
	type sender struct {
		src   source
		every time.Duration
	}
	var senders []sender
	for i := range cfg.labelSenders {
		senders = append(senders, sender{w.labelChannel(i), cfg.labelEvery})
	}
	for i := range cfg.chatSenders {
		senders = append(senders, sender{w.chatSender(i), 0})
	}
	for _, s := range senders {
		l.wg.Go(func() {
			for {
				began := time.Now()
				select {
				case <-l.stopped:
					return
				case <-l.tokens:
				}
				l.send(ctx, s.src.next())
				if rest := s.every - time.Since(began); rest > 0 {
					select {
					case <-l.stopped:
						return
					case <-time.After(rest):
					}
				}
			}
		})
	}
	return l
}

// finish stops new deliveries and waits for the senders to finish the ones
// they are retrying (each bounded by giveUp).
func (l *load) finish() {
	close(l.stopped)
	l.wg.Wait()
	l.ticker.Wait()
	l.client.CloseIdleConnections()
}

// send posts d until it is answered 200, retrying with the same body on
// 429, 5xx, timeouts and connection errors as providers do; any other
// answer is a failure.
func (l *load) send(ctx context.Context, d *delivery) {
	deadline := time.Now().Add(l.cfg.giveUp)
	wait := 50 * time.Millisecond
	for {
		d.attempts++
		code, body, err := l.post(ctx, d)
		switch {
		case err != nil:
			l.count(errorClass(err))
		default:
			l.count(fmt.Sprint(code))
		}
		switch {
		case err == nil && code == http.StatusOK:
			var a struct{ IDs []string }
			if jerr := json.Unmarshal(body, &a); jerr != nil {
				d.failure = fmt.Sprintf("200 with a body that is not an answer: %s", body)
				return
			}
			d.acked, d.ids = true, a.IDs
			return
		case err == nil && code != http.StatusTooManyRequests && code < 500:
			d.failure = fmt.Sprintf("answered %d %s", code, bytes.TrimSpace(body))
			return
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			last := fmt.Sprint(code)
			if err != nil {
				last = err.Error()
			}
			d.failure = fmt.Sprintf("gave up after %d attempts in %s, last: %s", d.attempts, l.cfg.giveUp, last)
			return
		}
		if err := pause(ctx, wait/2+rand.N(wait/2)); err != nil {
			d.failure = fmt.Sprintf("stopped after %d attempts: %v", d.attempts, err)
			return
		}
		wait = min(2*wait, time.Second)
	}
}

func (l *load) post(ctx context.Context, d *delivery) (int, []byte, error) {
	u := l.url + d.path()
	if d.provider == "zapi" {
		u += "?token=" + l.sec.zapi // Z-API sends nothing: the secret is in the URL
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(d.body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	switch d.provider {
	case "whapi":
		req.Header.Set("Authorization", "Bearer "+l.sec.whapi)
	case "waha":
		m := hmac.New(sha512.New, []byte(l.sec.waha))
		m.Write(d.body)
		req.Header.Set("X-Webhook-Hmac", hex.EncodeToString(m.Sum(nil)))
		req.Header.Set("X-Webhook-Hmac-Algorithm", "sha512")
	}
	res, err := l.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, body, err
}

func (l *load) count(class string) {
	l.mu.Lock()
	l.statuses[class]++
	l.mu.Unlock()
}

// answers summarises the answers: "200: 2031, 503: 350, refused: 12".
func (l *load) answers() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for k, v := range l.statuses {
		parts = append(parts, fmt.Sprintf("%s: %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func errorClass(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.Contains(err.Error(), "connection refused"):
		return "refused"
	case strings.Contains(err.Error(), "EOF"), strings.Contains(err.Error(), "connection reset"):
		return "cut"
	}
	return "error"
}
