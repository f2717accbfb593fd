package console

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// HostsSetting names the setting of the host names the console answers to,
// in its refusals and errors.
const HostsSetting = "WAHOOK_CONSOLE_HOSTS (-console-hosts)"

// maxHostName is the longest DNS name (253) with room for a port and brackets.
const maxHostName = 253 + len("[]:65535")

// hostCheck accepts the Host headers the console answers to: IP literals,
// localhost and *.localhost, and the configured names. A page whose DNS
// name was rebound to the console's address sends that name as its Host: it
// is refused, so the page reads nothing though the browser takes it for
// same-origin.
type hostCheck struct {
	names map[string]bool
}

// newHostCheck validates names (DNS names, no port, case and a trailing dot
// ignored).
func newHostCheck(names []string) (hostCheck, error) {
	h := hostCheck{names: map[string]bool{}}
	for _, n := range names {
		name, err := canonicalName(n)
		if err != nil {
			return hostCheck{}, fmt.Errorf("console: %s: %w", HostsSetting, err)
		}
		h.names[name] = true
	}
	return h, nil
}

// canonicalName checks one configured name and returns it lower case,
// without a trailing dot.
func canonicalName(n string) (string, error) {
	name := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
	if name == "" {
		return "", fmt.Errorf("empty host name %q", n)
	}
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
		// Always answered to; listing one does no harm.
		return name, nil
	}
	if len(name) > 253 {
		return "", fmt.Errorf("host name of %d bytes: at most 253", len(name))
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("host name %q: each dot-separated part must have 1 to 63 characters", name)
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '_' {
				return "", fmt.Errorf("host name %q: only letters, digits, '-' and '_' between dots (a name, without scheme, port or wildcard)", name)
			}
		}
	}
	return name, nil
}

// allowed reports whether a request with Host header host is for the
// console.
func (h hostCheck) allowed(host string) bool {
	if host == "" || len(host) > maxHostName {
		return false
	}
	if hp, _, err := net.SplitHostPort(host); err == nil {
		host = hp
	} else if inner, ok := strings.CutPrefix(host, "["); ok {
		// A bracketed IPv6 literal without a port.
		if host, ok = strings.CutSuffix(inner, "]"); !ok {
			return false
		}
	}
	if _, err := netip.ParseAddr(host); err == nil {
		// An IP literal is no DNS name: nothing to rebind.
		return true
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	// Browsers resolve localhost and its subdomains to loopback
	// themselves, never through DNS.
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	return h.names[name]
}

// maxHostShown bounds the Host a refusal shows.
const maxHostShown = 64

// refuseHost answers a request for a host the console does not answer to:
// 421, the request's host quoted and cut, and how to allow it.
func refuseHost(w http.ResponseWriter, host string) {
	shown := strconv.QuoteToASCII(host)
	if len(host) > maxHostShown {
		shown = strconv.QuoteToASCII(host[:maxHostShown]) + "…"
	}
	http.Error(w, fmt.Sprintf("console: host %s is not one this console answers to. "+
		"Open it by IP address or localhost, or add the name to %s.", shown, HostsSetting),
		http.StatusMisdirectedRequest)
}
