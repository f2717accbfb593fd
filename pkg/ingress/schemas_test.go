package ingress_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/whapi"
	"github.com/wahook/wahook/schemas"
)

// TestServesSchemas: every dataschema wahook writes resolves against the
// ingress (the path of its $id), as the schema file itself, cacheable and
// revalidated by ETag; the AsyncAPI document beside them too.
func TestServesSchemas(t *testing.T) {
	h, err := ingress.New(ingress.Config{
		Providers:    []provider.Provider{whapi.New()},
		AuthDisabled: true,
		Publisher:    publisherFunc(func(context.Context, ...broker.Message) error { return nil }),
		Binding:      envelope.NATS,
		Metrics:      ingress.NewMetrics(prometheus.NewRegistry()),
	}, nil)
	if err != nil {
		t.Fatalf("ingress.New: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	get := func(path string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	uris := []string{envelope.DeadLetterSchema, envelope.DeadLetterRedrivenSchema}
	for _, s := range derive.Streams {
		uris = append(uris, envelope.SchemaURI(s))
	}
	for _, uri := range uris {
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := get(u.Path)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/schema+json" ||
			resp.Header.Get("Cache-Control") == "" || resp.Header.Get("ETag") == "" {
			t.Errorf("GET %s: %d %v", u.Path, resp.StatusCode, resp.Header)
			continue
		}
		var doc struct {
			ID string `json:"$id"`
		}
		if err := json.Unmarshal(body, &doc); err != nil || doc.ID != uri {
			t.Errorf("GET %s: $id %q (%v), want %s", u.Path, doc.ID, err, uri)
		}
		want, _ := fs.ReadFile(schemas.FS, u.Path[len(schemas.Path):])
		if !bytes.Equal(body, want) {
			t.Errorf("GET %s: not the schema file", u.Path)
		}
		if resp, body := get(u.Path, "If-None-Match", resp.Header.Get("ETag")); resp.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("GET %s with its ETag: %d, %d bytes, want 304", u.Path, resp.StatusCode, len(body))
		}
	}
	resp, body := get(schemas.Path + schemas.AsyncAPI)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/yaml" || !bytes.HasPrefix(body, []byte("#")) {
		t.Errorf("GET asyncapi.yaml: %d %v", resp.StatusCode, resp.Header)
	}
	for _, p := range []string{"/schemas/", "/schemas/other.v1.json", "/schemas/../go.mod", "/schemas/x/call.v1.json"} {
		if resp, _ := get(p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest(http.MethodHead, srv.URL+"/schemas/call.v1.json", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/schema+json" {
		t.Errorf("HEAD a schema: %v %v, want 200", resp, err)
	}
	if resp, err := http.Post(srv.URL+"/schemas/call.v1.json", "application/json", nil); err != nil || resp.StatusCode == http.StatusOK {
		t.Errorf("POST a schema: %v %v, want no 200", resp, err)
	}
}
