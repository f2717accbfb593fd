package console

import (
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHostCheck(t *testing.T) {
	h, err := newHostCheck([]string{"Console.Example.", "wahook-ingress.wahook.svc", "10.0.0.1", "::1", "[fd00::1]"})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		host string
		want bool
	}{
		"IPv4":                     {"127.0.0.1", true},
		"IPv4 with port":           {"10.1.2.3:9090", true},
		"IPv6 in brackets":         {"[::1]", true},
		"IPv6 in brackets, port":   {"[::1]:9090", true},
		"IPv6 with zone, port":     {"[fe80::1%25eth0]:9090", true},
		"IPv6 bare":                {"::1", true},
		"localhost":                {"localhost", true},
		"localhost with port":      {"localhost:9090", true},
		"localhost uppercase":      {"LOCALHOST:9090", true},
		"localhost trailing dot":   {"localhost.:9090", true},
		"sub.localhost":            {"console.localhost:9090", true},
		"configured name":          {"console.example:9090", true},
		"configured, uppercase":    {"CONSOLE.Example", true},
		"configured, trailing dot": {"console.example.:443", true},
		"configured service name":  {"wahook-ingress.wahook.svc:9090", true},
		"subdomain of configured":  {"a.console.example", false},
		"evil name":                {"evil.example:9090", false},
		"localhost as a prefix":    {"localhost.evil.example", false},
		"localhost in a label":     {"evillocalhost", false},
		"IPv4 with a dot":          {"127.0.0.1.", false},
		"empty":                    {"", false},
		"unclosed bracket":         {"[::1", false},
		"over-long":                {strings.Repeat("a", 300) + ".localhost", false},
		"over-long configured":     {strings.Repeat("x.", 140) + "console.example", false},
	} {
		if got := h.allowed(tc.host); got != tc.want {
			t.Errorf("%s: allowed(%q) = %v; want %v", name, tc.host, got, tc.want)
		}
	}
}

func TestHostNamesChecked(t *testing.T) {
	for _, bad := range []string{"console.example:9090", "http://console.example", "*.example", "a..b", "", " ",
		strings.Repeat("a", 64) + ".example", strings.Repeat("a.", 127) + "example", "caf\u00e9.example"} {
		if _, err := newHostCheck([]string{bad}); err == nil || !strings.Contains(err.Error(), "WAHOOK_CONSOLE_HOSTS") {
			t.Errorf("newHostCheck(%q) = %v; want an error naming WAHOOK_CONSOLE_HOSTS", bad, err)
		}
	}
	if _, err := New(Config{Hosts: []string{"evil.example:80"}}); err == nil {
		t.Error("New with a host name with a port: no error")
	}

	var f Flags
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.RegisterFlags(fs)
	if err := fs.Parse([]string{"-console-hosts", " Console.Example. ,,wahook-ingress "}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"console.example", "wahook-ingress"}, f.Hosts); diff != "" {
		t.Errorf("-console-hosts mismatch (-want +got):\n%s", diff)
	}
	if err := fs.Parse([]string{"-console-hosts", "console.example:9090"}); err == nil || !strings.Contains(err.Error(), "without scheme, port or wildcard") {
		t.Errorf("-console-hosts with a port = %v; want the error", err)
	}
}

// TestForeignHostRefused: every console path, live views and static files
// included, refuses a host it does not answer to, with a bounded,
// escaped message naming the setting.
func TestForeignHostRefused(t *testing.T) {
	c, err := New(Config{Hosts: []string{"console.example"}})
	if err != nil {
		t.Fatal(err)
	}
	long := "evil.example\nSet-Cookie: \u00e9" + strings.Repeat("x", 1000)
	for _, path := range []string{"/console/", "/console/overview/live", "/console/static/console.js", "/console/labels"} {
		for _, host := range []string{"evil.example:9090", long} {
			r := httptest.NewRequest(http.MethodGet, path, nil)
			r.Host = host
			w := httptest.NewRecorder()
			c.ServeHTTP(w, r)
			body := w.Body.String()
			if w.Code != http.StatusMisdirectedRequest || !strings.Contains(body, "WAHOOK_CONSOLE_HOSTS") {
				t.Errorf("GET %s for %.30q = %d %s; want 421 naming WAHOOK_CONSOLE_HOSTS", path, host, w.Code, body)
			}
			if len(body) > 300 || strings.Count(body, "\n") != 1 || strings.Contains(body, "\u00e9") {
				t.Errorf("GET %s for %.30q: refusal shows the host unbounded or unescaped: %s", path, host, body)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("GET %s refusal Content-Type = %q; want text/plain", path, ct)
			}
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/console/", nil)
	r.Host = "CONSOLE.example.:9090"
	w := httptest.NewRecorder()
	c.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Errorf("GET /console/ for the configured host = %d; want 200", w.Code)
	}
}
