package admin

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// HealthcheckTimeout bounds Healthcheck: below the usual probe timeouts of
// compose and Kubernetes, above readyz's own 2s bound.
const HealthcheckTimeout = 4 * time.Second

// HealthcheckURL is the /readyz URL of an admin listener configured with
// addr: an unspecified host (":9090", "0.0.0.0:9090", "[::]:9090") is
// asked on loopback.
func HealthcheckURL(addr string) (string, error) {
	if addr == "" {
		return "", fmt.Errorf("healthcheck: the admin listener is off (empty admin address)")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("healthcheck: admin address %q: %w", addr, err)
	}
	switch ip := net.ParseIP(host); {
	case host == "":
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}

// Healthcheck asks the admin listener configured with addr whether the
// service is ready: nil on 200, else an error with the answer. It lets a
// container without a shell or curl (distroless) have a health check: the
// binary run with -healthcheck.
func Healthcheck(ctx context.Context, addr string) error {
	url, err := HealthcheckURL(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, HealthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s: %s %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
