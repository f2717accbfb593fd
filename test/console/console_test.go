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

// startIngress builds and runs the ingress as `make run` does, on free
// ports, until the test ends.
func startIngress(t *testing.T) *service {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "ingress")
	build := exec.Command("go", "build", "-o", bin, "github.com/wahook/wahook/services/ingress")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ingress: %v\n%s", err, out)
	}
	s := &service{t: t, token: "console-test-token"}
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0",
		"-nats-embedded-addr", "127.0.0.1:-1", "-data-dir", filepath.Join(dir, "data"), "-auth-disabled",
		"-derive", "all", "-log-format", "json")
	cmd.Env = append(os.Environ(), "WAHOOK_CONSOLE_TOKEN="+s.token)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	addrs := make(chan [2]string, 1)
	go func() {
		var hook, adm string
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
				hook = l.Addr
				addrs <- [2]string{hook, adm}
			}
		}
	}()
	select {
	case a := <-addrs:
		s.hook, s.adm = "http://"+a[0], "http://"+a[1]
	case <-time.After(60 * time.Second):
		t.Fatal("the ingress did not start")
	}
	return s
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
	s := startIngress(t)

	t.Run("overview shows a delivery live", func(t *testing.T) {
		if err := chromedp.Do(step(t, ctx), chromedp.Navigate(s.adm+"/console/"), chromedp.WaitVisible("#ready"),
			until(`document.body.dataset.live === "on"`)); err != nil {
			t.Fatalf("open overview: %v", err)
		}
		// Sent once the page is open: the row comes over the live view.
		s.post("/v1/webhooks/whapi", fixture(t, "whapi", "messages.post_incoming-text.json"))
		if err := chromedp.Do(step(t, ctx), until(text(`tr[data-provider="whapi"] td.deliveries`)+` === "1"`),
			until(text(`#streams`)+`.includes("chat-created")`)); err != nil {
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
		s.post("/v1/webhooks/whapi", fixture(t, "whapi", "chats.patch_label-assigned.json"))
		s.post("/v1/webhooks/whapi", fixture(t, "whapi", "chats.patch_label-removed.json"))
		// Z-API's form of the group's id.
		page := "/console/chat?chat=120363398750933550-group"
		s.awaitPage(page, `data-kind="removed"`)
		if err := chromedp.Do(step(t, ctx), chromedp.Navigate(s.adm+page), chromedp.WaitVisible("#timeline")); err != nil {
			t.Fatal(err)
		}
		kinds, err := chromedp.Run(step(t, ctx), chromedp.Evaluate[[]string](`[...document.querySelectorAll("#timeline li")].map((li) => li.dataset.kind)`))
		if err != nil || strings.Join(kinds, " ") != "added removed" {
			t.Errorf("timeline kinds = %v, %v; want added removed", kinds, err)
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

	t.Run("live tail and an event's causal chain", func(t *testing.T) {
		if err := chromedp.Do(step(t, ctx), chromedp.Navigate(s.adm+"/console/tail?provider=whapi&stream=derived"),
			until(`document.body.dataset.live === "on"`)); err != nil {
			t.Fatal(err)
		}
		s.post("/v1/webhooks/whapi", strings.Replace(fixture(t, "whapi", "chats.patch_label-assigned.json"), `"timestamp": 1747391325`, `"timestamp": 1747391999`, 2))
		if err := chromedp.Do(step(t, ctx), until(`document.querySelector('#tail tbody tr[data-type="io.wahook.label.added"]') !== null`)); err != nil {
			t.Fatal(err)
		}
		shot(t, ctx, "tail")
		if err := chromedp.Do(step(t, ctx), chromedp.Click(`#tail tbody tr[data-type="io.wahook.label.added"] a`),
			chromedp.WaitVisible("#chain"), until(`document.querySelector('#chain [data-derived="io.wahook.label.added"]') !== null`),
			until(`document.querySelector("#chain").textContent.includes("io.wahook.ingress.whapi.chats.patch")`)); err != nil {
			t.Fatal(err)
		}
		shot(t, ctx, "event")
	})
}
