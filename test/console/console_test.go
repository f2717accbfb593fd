// Package console tests the web console in a real browser: headless
// Chromium driven with chromedp against the ingress binary as `make run`
// starts it (embedded NATS, every derived stream in process). It skips
// when Chromium is not installed; -console.screenshots=DIR writes a PNG of
// each page there (make console-screenshots).
package console

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const chromium = "/usr/bin/chromium"

var screenshots = flag.String("console.screenshots", "", "write a PNG of each console page into this directory")

// service is a running ingress: its webhook and admin base URLs.
type service struct {
	t         *testing.T
	hook, adm string
	token     string
}

// twoItems is a delivery of two messages: a dead letter for an ingress
// taking one item a delivery, redriven by one taking more.
const twoItems = `{"messages":[{"id":"dl-1","type":"text","chat_id":"919984351847@s.whatsapp.net","timestamp":1712995245,"text":{"body":"one"}},` +
	`{"id":"dl-2","type":"text","chat_id":"919984351847@s.whatsapp.net","timestamp":1712995246,"text":{"body":"two"}}],` +
	`"event":{"type":"messages","event":"post"},"channel_id":"DL-CHANNEL"}`

// buildIngress builds the ingress binary.
func buildIngress(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ingress")
	build := exec.Command("go", "build", "-o", bin, "github.com/wahook/wahook/services/ingress")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ingress: %v\n%s", err, out)
	}
	return bin
}

// startIngress runs the ingress as `make run` does, on free ports, with
// its data in dir, until stop is called or the test ends.
func startIngress(t *testing.T, bin, dir string, extra ...string) (s *service, stop func()) {
	t.Helper()
	s = &service{t: t, token: "console-test-token"}
	cmd := exec.Command(bin, append([]string{"-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0",
		"-nats-embedded-addr", "127.0.0.1:-1", "-data-dir", dir, "-auth-disabled",
		"-derive", "all", "-log-format", "json"}, extra...)...)
	cmd.Env = append(os.Environ(), "WAHOOK_CONSOLE_TOKEN="+s.token)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)
	addrs := make(chan [2]string, 1)
	go func() {
		var adm string
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var l struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue
			}
			switch l.Msg {
			case "admin listening":
				adm = l.Addr
			case "ingress listening":
				addrs <- [2]string{l.Addr, adm}
			}
		}
	}()
	select {
	case a := <-addrs:
		s.hook, s.adm = "http://"+a[0], "http://"+a[1]
	case <-time.After(60 * time.Second):
		t.Fatal("the ingress did not start")
	}
	return s, stop
}

func (s *service) post(path, body string) {
	s.t.Helper()
	res, err := http.Post(s.hook+path, "application/json", strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		s.t.Fatalf("POST %s = %d", path, res.StatusCode)
	}
}

func fixture(t *testing.T, provider, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "pkg", "provider", provider, "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// browser starts headless Chromium for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("no Chromium at %s (apt-get install chromium)", chromium)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 860))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	// The first run starts the browser, for as long as ctx lives: no
	// timeout on it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// step bounds one step of a test.
func step(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// shot saves the window (not the whole page: small files) as {name}.png
// when asked to.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if *screenshots == "" {
		return
	}
	png, err := chromedp.Run(step(t, ctx), chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(*screenshots, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// until waits until the page's JavaScript expression is true.
func until(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond),
			chromedp.WithPollingTimeout(25*time.Second))(ctx, tg)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", expr, err)
		}
		return nil
	})
}

// text is a JavaScript expression: the text of the element sel, "" when
// absent.
func text(sel string) string {
	return fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? "")`, sel)
}

// awaitPage polls an admin page over HTTP until it contains want.
func (s *service) awaitPage(path, want string) {
	s.t.Helper()
	end := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(s.adm + path)
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if strings.Contains(string(b), want) {
				return
			}
		}
		if time.Now().After(end) {
			s.t.Fatalf("GET %s has no %q after 30s (%v)", path, want, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestConsoleInBrowser(t *testing.T) {
	ctx := browser(t)
	bin, dir := buildIngress(t), t.TempDir()
	// An ingress taking one item a delivery dead-letters two; the one
	// tested, taking more, redrives them.
	first, stop := startIngress(t, bin, dir, "-max-items", "1")
	if res, err := http.Post(first.hook+"/v1/webhooks/whapi", "application/json", strings.NewReader(twoItems)); err != nil || res.StatusCode != http.StatusBadRequest {
		t.Fatalf("POST two items to an ingress taking one = %v, %v; want 400", res, err)
	} else {
		res.Body.Close()
	}
	stop()
	s, _ := startIngress(t, bin, dir)

	t.Run("overview shows a delivery live", func(t *testing.T) {
		if err := chromedp.Do(step(t, ctx), chromedp.Navigate(s.adm+"/console/"), chromedp.WaitVisible("#ready"),
			until(`document.body.dataset.live === "on"`)); err != nil {
			t.Fatalf("open overview: %v", err)
		}
		// Sent once the page is open: the row comes over the live view.
		s.post("/v1/webhooks/whapi", fixture(t, "whapi", "messages.post_incoming-text.json"))
		if err := chromedp.Do(step(t, ctx), until(text(`tr[data-provider="whapi"] td.deliveries`)+` === "1"`),
			until(text(`#streams`)+`.includes("chat-created")`),
			until(text(`table[data-channels="whapi"] tr[data-channel="MANTIS-M72HC"] td.deliveries`)+` === "1"`)); err != nil {
			t.Fatal(err)
		}
		if *screenshots != "" {
			// A few more over some samples, for sparklines with a shape.
			for i := range 12 {
				body := strings.Replace(fixture(t, "whapi", "messages.post_incoming-text.json"), `"id": "`, fmt.Sprintf(`"id": "shot%d-`, i), 1)
				s.post("/v1/webhooks/whapi", body)
				time.Sleep(time.Duration(i%4) * 300 * time.Millisecond)
			}
			if err := chromedp.Do(step(t, ctx), until(text(`tr[data-provider="whapi"] td.deliveries`)+` === "13"`)); err != nil {
				t.Fatal(err)
			}
		}
		shot(t, ctx, "overview")
	})

	t.Run("labels page lists the registry with swatches", func(t *testing.T) {
		s.post("/v1/webhooks/whapi", fixture(t, "whapi", "labels.post.json"))
		s.awaitPage("/console/labels", `data-label="76"`)
		if err := chromedp.Do(step(t, ctx), chromedp.Navigate(s.adm+"/console/labels"),
			until(text(`tr[data-label="76"]`)+`.includes("Order complete")`)); err != nil {
			t.Fatal(err)
		}
		fill, err := chromedp.Run(step(t, ctx), chromedp.Evaluate[string](`document.querySelector('tr[data-label="76"] svg.swatch rect').getAttribute("fill")`))
		if err != nil || fill != "lightsteelblue" {
			t.Errorf("swatch fill = %q, %v; want lightsteelblue", fill, err)
		}
		shot(t, ctx, "labels")
	})

	t.Run("chat timeline shows a label put on then taken off", func(t *testing.T) {
		// The group's chat first, so that the page also says since when
		// and by which event the chat is known.
		s.post("/v1/webhooks/whapi", strings.NewReplacer(`"919984351847@s.whatsapp.net"`, `"120363398750933550@g.us"`,
			`"contact"`, `"group"`).Replace(fixture(t, "whapi", "chats.post_incoming-new-chat.json")))
		s.post("/v1/webhooks/whapi", fixture(t, "whapi", "chats.patch_label-assigned.json"))
		s.post("/v1/webhooks/whapi", fixture(t, "whapi", "chats.patch_label-removed.json"))
		// Z-API's form of the group's id.
		page := "/console/chat?chat=120363398750933550-group"
		s.awaitPage(page, `data-kind="removed"`)
		if err := chromedp.Do(step(t, ctx), chromedp.Navigate(s.adm+page), chromedp.WaitVisible("#timeline"), chromedp.WaitVisible("#first-event")); err != nil {
			t.Fatal(err)
		}
		kinds, err := chromedp.Run(step(t, ctx), chromedp.Evaluate[[]string](`[...document.querySelectorAll("#timeline li")].map((li) => li.dataset.kind)`))
		if err != nil || strings.Join(kinds, " ") != "created added removed" {
			t.Errorf("timeline kinds = %v, %v; want created added removed", kinds, err)
		}
		got, err := chromedp.Run(step(t, ctx), chromedp.Evaluate[string](`document.querySelector("#timeline li.added").textContent`))
		if err != nil || !strings.Contains(got, "New order") || !strings.Contains(got, "put on") {
			t.Errorf("added item = %q, %v; want New order put on", got, err)
		}
		chat, err := chromedp.Run(step(t, ctx), chromedp.Evaluate[string](`document.querySelector("#chat-id").textContent`))
		if err != nil || chat != "120363398750933550@g.us" {
			t.Errorf("canonical chat = %q, %v", chat, err)
		}
		shot(t, ctx, "chat")
	})

	t.Run("chat timeline links the event that first saw the chat", func(t *testing.T) {
		s.post("/v1/webhooks/whapi", fixture(t, "whapi", "chats.post_incoming-new-chat.json"))
		page := "/console/chat?chat=919984351847"
		s.awaitPage(page, `id="first-event"`)
		if err := chromedp.Do(step(t, ctx), chromedp.Navigate(s.adm+page), chromedp.WaitVisible("#first-seen"),
			chromedp.Click("#first-seen a"), chromedp.WaitVisible("#chain"),
			until(`document.body.textContent.includes("io.wahook.ingress.whapi.chats.post")`),
			until(`document.querySelector('#chain [data-derived="io.wahook.chat.created"]') !== null`)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("live tail and an event's causal chain", func(t *testing.T) {
		if err := chromedp.Do(step(t, ctx), chromedp.Navigate(s.adm+"/console/tail?provider=whapi&stream=derived"),
			until(`document.body.dataset.live === "on"`)); err != nil {
			t.Fatal(err)
		}
		// The range already lists label.added events of the tests before:
		// the one derived from this delivery is the row that was not there.
		added := `#tail tbody tr[data-type="io.wahook.label.added"]`
		before, err := chromedp.Run(step(t, ctx), chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('`+added+`'), (tr) => tr.dataset.id)`))
		if err != nil {
			t.Fatal(err)
		}
		s.post("/v1/webhooks/whapi", strings.Replace(fixture(t, "whapi", "chats.patch_label-assigned.json"), `"timestamp": 1747391325`, `"timestamp": 1747391999`, 2))
		known, _ := json.Marshal(before)
		newRow := fmt.Sprintf(`Array.from(document.querySelectorAll('%s')).find((tr) => !%s.includes(tr.dataset.id))`, added, known)
		if err := chromedp.Do(step(t, ctx), until(newRow+` !== undefined`)); err != nil {
			t.Fatal(err)
		}
		shot(t, ctx, "tail")
		// Clicked as an element, not at its place on the screen: more live
		// rows may still come in at the top and move it.
		if _, err := chromedp.Run(step(t, ctx), chromedp.Evaluate[bool](newRow+`.querySelector("a").click() ?? true`)); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(step(t, ctx), chromedp.WaitVisible("#chain"), until(`document.querySelector('#chain [data-derived="io.wahook.label.added"]') !== null`),
			until(`document.querySelector("#chain").textContent.includes("io.wahook.ingress.whapi.chats.patch")`),
			// The delivery it came in, by request id, with its raw event.
			until(text(`#requestid`)+`.length > 0`),
			until(`document.querySelector('#delivery-events li[data-delivery] a') !== null`)); err != nil {
			t.Fatal(err)
		}
		shot(t, ctx, "event")
	})

	t.Run("the tail's older page", func(t *testing.T) {
		// One event a page: More shows the one before, not live.
		firstID := `document.querySelector("#tail tbody tr")?.dataset.id ?? ""`
		if err := chromedp.Do(step(t, ctx), chromedp.Navigate(s.adm+"/console/tail?provider=whapi&stream=raw&n=1"), chromedp.WaitVisible("#more")); err != nil {
			t.Fatal(err)
		}
		first, err := chromedp.Run(step(t, ctx), chromedp.Evaluate[string](firstID))
		if err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(step(t, ctx), chromedp.Click("#more"), chromedp.WaitVisible("#tail-older")); err != nil {
			t.Fatal(err)
		}
		older, err := chromedp.Run(step(t, ctx), chromedp.Evaluate[string](firstID))
		if err != nil {
			t.Fatal(err)
		}
		if first == "" || older == "" || older == first {
			t.Errorf("older page lists %q after %q; want another event", older, first)
		}
		if err := chromedp.Do(step(t, ctx), until(`document.querySelector("[data-tail]") === null`)); err != nil {
			t.Errorf("older page follows live events: %v", err)
		}
	})

	t.Run("a dead letter redriven once", func(t *testing.T) {
		if err := chromedp.Do(step(t, ctx), chromedp.Navigate(s.adm+"/console/deadletters"),
			chromedp.WaitVisible(`article.deadletter button[data-redrive]`),
			until(`document.querySelector("article.deadletter pre.body").textContent.includes('"body": "two"')`)); err != nil {
			t.Fatal(err)
		}
		// Without the token the page asks for it and sends nothing.
		if err := chromedp.Do(step(t, ctx), chromedp.Click(`article.deadletter button[data-redrive]`),
			until(`document.querySelector("article.deadletter output").textContent.includes("token first")`)); err != nil {
			t.Fatal(err)
		}
		shot(t, ctx, "deadletters")
		if err := chromedp.Do(step(t, ctx), chromedp.SendKeys("#token", s.token), chromedp.Click(`article.deadletter button[data-redrive]`),
			until(`document.querySelector("article.deadletter output").textContent.includes("redriven: 2 events")`)); err != nil {
			t.Fatal(err)
		}
		// Opened again: marked redriven, no button; a second redrive
		// publishes nothing.
		if err := chromedp.Do(step(t, ctx), chromedp.Navigate(s.adm+"/console/deadletters"), chromedp.WaitVisible(`article.deadletter .redriven`)); err != nil {
			t.Fatal(err)
		}
		if n, err := chromedp.Run(step(t, ctx), chromedp.Evaluate[int](`document.querySelectorAll("button[data-redrive]").length`)); err != nil || n != 0 {
			t.Errorf("redrive buttons after the redrive: %d, %v; want none", n, err)
		}
		id, err := chromedp.Run(step(t, ctx), chromedp.Evaluate[string](`document.querySelector("article.deadletter").dataset.id`))
		if err != nil {
			t.Fatal(err)
		}
		status, err := chromedp.Run(step(t, ctx), chromedp.Evaluate[int](fmt.Sprintf(`fetch("/console/deadletters/redrive", {method: "POST",
			headers: {"X-Wahook-Console-Token": %q, "Content-Type": "application/x-www-form-urlencoded"}, body: "id=" + %q}).then((r) => r.status)`, s.token, id),
			chromedp.EvalAwaitPromise))
		if err != nil || status != http.StatusConflict {
			t.Errorf("second redrive from the page: %d, %v; want 409", status, err)
		}
		s.awaitPage("/console/tail?stream=raw&provider=whapi&channel=DL-CHANNEL", `data-type="io.wahook.ingress.whapi.messages.post"`)
	})
}
