package natsbroker

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// Who may do what on the embedded server (contract section 8): wahook's
// service user everything; read-only subscribers may read the streams and
// buckets through consumers of their own; anonymous clients nothing, since
// the server refuses connections without credentials.

// DefaultServiceUser is the user wahook connects to its embedded server as
// when none is configured.
const DefaultServiceUser = "wahook"

// Files the embedded server keeps in its StoreDir.
const (
	// ServiceUserFile holds the generated service user, so that a restart
	// reuses it (mode 0600).
	ServiceUserFile = "nats-service-user.json"
	// ContextFile is a nats CLI context for the service user, rewritten at
	// every start (mode 0600): `nats --context <dir>/nats-context.json ...`.
	ContextFile = "nats-context.json"
)

// maxUserLen bounds user names read from the configuration.
const maxUserLen = 128

// Subscriber is a read-only user of the embedded server.
type Subscriber struct {
	User string
	// Password is the plain password, or a bcrypt hash ("$2a$..."), which
	// nats-server compares the presented password with.
	Password string
}

// ParseSubscribers reads comma-separated user:password pairs
// (WAHOOK_NATS_SUBSCRIBERS). A password may contain ':' (the first one
// separates) but not ','.
func ParseSubscribers(list string) ([]Subscriber, error) {
	var subs []Subscriber
	seen := map[string]bool{}
	for i, entry := range strings.Split(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		user, pass, ok := strings.Cut(entry, ":")
		// The error names the entry's position, never its text: it holds a
		// password.
		switch {
		case !ok || pass == "":
			return nil, fmt.Errorf("natsbroker: subscriber %d: want user:password", i+1)
		case !validUser(user):
			return nil, fmt.Errorf("natsbroker: subscriber %d: user name must be 1 to %d letters, digits, '-', '_' or '.'", i+1, maxUserLen)
		case seen[user]:
			return nil, fmt.Errorf("natsbroker: subscriber %q given twice", user)
		}
		seen[user] = true
		subs = append(subs, Subscriber{User: user, Password: pass})
	}
	return subs, nil
}

func validUser(u string) bool {
	if u == "" || len(u) > maxUserLen {
		return false
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c == '-' || c == '_' || c == '.' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// subscriberPublish are the subjects a subscriber may publish to: the
// JetStream API requests that read (stream and consumer info, direct and
// stored message gets, which KV reads use), create and use consumers of
// their own (pull, ack, flow control of push consumers such as KV
// watchers), and nothing else: no stream create, update, purge or delete,
// no message delete, no publish on wahook.> or $KV.> (KV writes).
var subscriberPublish = []string{
	"$JS.API.INFO",
	"$JS.API.STREAM.NAMES",
	"$JS.API.STREAM.LIST",
	"$JS.API.STREAM.INFO.*",
	"$JS.API.STREAM.MSG.GET.*",
	"$JS.API.DIRECT.GET.>",
	// Named consumers only (stream.name[.filter]): the legacy ephemeral
	// form $JS.API.CONSUMER.CREATE.<stream> takes the name from the body,
	// where the denials below cannot see it.
	"$JS.API.CONSUMER.CREATE.*.>",
	"$JS.API.CONSUMER.DURABLE.CREATE.*.*",
	"$JS.API.CONSUMER.NAMES.*",
	"$JS.API.CONSUMER.LIST.*",
	"$JS.API.CONSUMER.INFO.*.*",
	"$JS.API.CONSUMER.DELETE.*.*",
	"$JS.API.CONSUMER.MSG.NEXT.*.*",
	"$JS.ACK.>",
	"$JS.FC.>",
}

// subscriberSubscribe are the subjects a subscriber may subscribe to:
// wahook's events, replies (API answers and pushed consumer messages arrive
// on inboxes) and the KV buckets' subjects.
var subscriberSubscribe = []string{"wahook.>", "_INBOX.>", "$KV.>"}

// SubscriberPermissions are the permissions of a read-only subscriber.
// Consumers named in protected (wahook's own durable consumers) are out of
// its reach on every stream: it can neither update, delete nor pull from
// them, nor ack their messages, which would take raw events away from the
// deriver.
func SubscriberPermissions(protected []string) *server.Permissions {
	var deny []string
	for _, n := range protected {
		deny = append(deny,
			"$JS.API.CONSUMER.CREATE.*."+n,
			"$JS.API.CONSUMER.CREATE.*."+n+".>",
			"$JS.API.CONSUMER.DURABLE.CREATE.*."+n,
			"$JS.API.CONSUMER.DELETE.*."+n,
			"$JS.API.CONSUMER.MSG.NEXT.*."+n,
			// Acks: $JS.ACK.<stream>.<consumer>.… and the v2 form
			// $JS.ACK.<domain>.<account>.<stream>.<consumer>.….
			"$JS.ACK.*."+n+".>",
			"$JS.ACK.*.*.*."+n+".>",
		)
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: append([]string(nil), subscriberPublish...), Deny: deny},
		Subscribe: &server.SubjectPermission{Allow: append([]string(nil), subscriberSubscribe...)},
	}
}

// serviceAuth returns the service user: the configured one, or the one kept
// in dir, generated there at first start.
func serviceAuth(cfg EmbeddedConfig) (Auth, error) {
	switch {
	case cfg.User != "" && cfg.Password != "":
		if !validUser(cfg.User) {
			return Auth{}, fmt.Errorf("natsbroker: embedded server: user name must be 1 to %d letters, digits, '-', '_' or '.'", maxUserLen)
		}
		return Auth{User: cfg.User, Password: cfg.Password}, nil
	case cfg.User != "" || cfg.Password != "":
		return Auth{}, errors.New("natsbroker: embedded server: set both the service user and its password, or neither")
	}
	path := filepath.Join(cfg.StoreDir, ServiceUserFile)
	if b, err := os.ReadFile(path); err == nil {
		var a struct{ User, Password string }
		if err := json.Unmarshal(b, &a); err != nil || !validUser(a.User) || a.Password == "" {
			return Auth{}, fmt.Errorf("natsbroker: embedded server: %s is damaged; remove it to generate a new service user", path)
		}
		// It may have been copied with looser permissions.
		if err := os.Chmod(path, 0o600); err != nil {
			return Auth{}, fmt.Errorf("natsbroker: embedded server: %w", err)
		}
		return Auth{User: a.User, Password: a.Password}, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return Auth{}, fmt.Errorf("natsbroker: embedded server: service user: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return Auth{}, fmt.Errorf("natsbroker: embedded server: generate password: %w", err)
	}
	a := Auth{User: DefaultServiceUser, Password: base64.RawURLEncoding.EncodeToString(secret)}
	b, _ := json.Marshal(struct {
		User     string `json:"user"`
		Password string `json:"password"`
	}{a.User, a.Password})
	if err := writePrivate(path, b); err != nil {
		return Auth{}, fmt.Errorf("natsbroker: embedded server: service user: %w", err)
	}
	return a, nil
}

// users are the server's users: the service user with every right, and the
// subscribers.
func users(service Auth, subs []Subscriber, protected []string) ([]*server.User, error) {
	us := []*server.User{{Username: service.User, Password: service.Password}}
	for _, s := range subs {
		if s.User == service.User {
			return nil, fmt.Errorf("natsbroker: embedded server: subscriber %q is the service user", s.User)
		}
		if !validUser(s.User) || s.Password == "" {
			return nil, fmt.Errorf("natsbroker: embedded server: subscriber %q: invalid user name or empty password", s.User)
		}
		us = append(us, &server.User{Username: s.User, Password: s.Password, Permissions: SubscriberPermissions(protected)})
	}
	return us, nil
}

// writePrivate writes b to path, readable by the owner only, replacing any
// file there at once (a reader never sees half of it).
func writePrivate(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// natsContext is a nats CLI context (the CLI's own JSON format: description,
// url, user, password, ...); the CLI loads one from a path ending in .json.
type natsContext struct {
	Description string `json:"description"`
	URL         string `json:"url"`
	User        string `json:"user"`
	Password    string `json:"password"`
}

// WriteContext writes a nats CLI context that connects to e as its service
// user to path, readable by the owner only, and returns the command line
// that uses it. The password is in the file, never in the command.
func (e *Embedded) WriteContext(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("natsbroker: nats context: %w", err)
	}
	b, err := json.MarshalIndent(natsContext{
		Description: "wahook embedded NATS server, service user (all rights)",
		URL:         e.url,
		User:        e.service.User,
		Password:    e.service.Password,
	}, "", "  ")
	if err != nil {
		return "", fmt.Errorf("natsbroker: nats context: %w", err)
	}
	if err := writePrivate(abs, append(b, '\n')); err != nil {
		return "", fmt.Errorf("natsbroker: nats context: %w", err)
	}
	return "nats --context " + shellQuote(abs), nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"$`\\*?[]{}()<>|&;#~!") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// LoadContext reads a nats CLI context file (WriteContext's, or one the
// CLI wrote): the server URL and how to log in.
func LoadContext(path string) (url string, a Auth, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", Auth{}, fmt.Errorf("natsbroker: nats context: %w", err)
	}
	var c struct {
		URL      string `json:"url"`
		User     string `json:"user"`
		Password string `json:"password"`
		Token    string `json:"token"`
		Creds    string `json:"creds"`
		NKey     string `json:"nkey"`
		Cert     string `json:"cert"`
		Key      string `json:"key"`
		CA       string `json:"ca"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", Auth{}, fmt.Errorf("natsbroker: nats context %s: %w", path, err)
	}
	a = Auth{User: c.User, Password: c.Password, Token: c.Token, CredsFile: c.Creds, NKeyFile: c.NKey,
		TLSCA: c.CA, TLSCert: c.Cert, TLSKey: c.Key}
	// The CLI takes a user without a password as a token.
	if a.User != "" && a.Password == "" && a.Token == "" {
		a.Token, a.User = a.User, ""
	}
	return c.URL, a, nil
}

// ServiceAuth is how wahook logs in to e: its service user.
func (e *Embedded) ServiceAuth() Auth { return e.service }
