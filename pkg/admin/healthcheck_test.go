package admin_test

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wahook/wahook/pkg/admin"
)

func TestHealthcheckURL(t *testing.T) {
	tests := []struct {
		give, want string
	}{
		{"127.0.0.1:9090", "http://127.0.0.1:9090/readyz"},
		{"0.0.0.0:9091", "http://127.0.0.1:9091/readyz"},
		{":9090", "http://127.0.0.1:9090/readyz"},
		{"[::]:9090", "http://[::1]:9090/readyz"},
		{"admin.local:9090", "http://admin.local:9090/readyz"},
	}
	for _, tt := range tests {
		got, err := admin.HealthcheckURL(tt.give)
		if err != nil || got != tt.want {
			t.Errorf("HealthcheckURL(%q) = %q, %v; want %q", tt.give, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "9090", "host"} {
		if got, err := admin.HealthcheckURL(bad); err == nil {
			t.Errorf("HealthcheckURL(%q) = %q, want an error", bad, got)
		}
	}
}

// Healthcheck is nil when the admin listener's /readyz answers 200, and an
// error with the reason when it answers 503 or nobody listens.
func TestHealthcheck(t *testing.T) {
	var notReady error
	srv := httptest.NewServer(admin.Handler(admin.Config{Ready: func(context.Context) error { return notReady }}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	_, port, _ := net.SplitHostPort(addr)
	if err := admin.Healthcheck(context.Background(), "0.0.0.0:"+port); err != nil {
		t.Errorf("Healthcheck of a ready service = %v", err)
	}
	notReady = errors.New("consumer stuck: call")
	if err := admin.Healthcheck(context.Background(), addr); err == nil || !strings.Contains(err.Error(), "consumer stuck: call") {
		t.Errorf("Healthcheck of a service not ready = %v, want its reason", err)
	}
	srv.Close()
	if err := admin.Healthcheck(context.Background(), addr); err == nil {
		t.Errorf("Healthcheck with nobody listening = nil, want an error")
	}
}

func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(admin.BuildInfo())
	b := admin.ReadBuild()
	if b.Version == "" || b.Commit == "" || !strings.HasPrefix(b.GoVersion, "go") {
		t.Errorf("ReadBuild() = %+v, want every field set", b)
	}
	want := `
# HELP wahook_build_info Always 1; the labels name the running build.
# TYPE wahook_build_info gauge
wahook_build_info{commit="` + b.Commit + `",goversion="` + b.GoVersion + `",version="` + b.Version + `"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "wahook_build_info"); err != nil {
		t.Error(err)
	}
}
