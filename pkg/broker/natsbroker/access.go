package natsbroker

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// Who may do what on the embedded server (contract section 8,
// docs/security.md): wahook's service user everything, in the account that holds
// its streams and buckets (ServiceAccount); every read-only subscriber in an
// account of its own, which imports from ServiceAccount only wahook's live
// events, the JetStream requests that read, and the requests of the durable
// consumers wahook keeps for that subscriber (SubscriberConsumer);
// anonymous clients nothing, since the server refuses connections without
// credentials.
//
// The account boundary is what makes it airtight. A JetStream request
// sends its answer, and a pull consumer its messages, to whatever reply
// subject the requester names, and a push consumer delivers to whatever
// subject its creator names (nats-server#8274); inside wahook's account a
// stream would store them. A request from a subscriber's account reaches
// wahook's account with a reply subject the server makes up (_R_.…), which
// no stream captures, and what comes back lands in the subscriber's own
// account, which has no streams. Subscribers cannot create consumers, so
// they name no deliver subject at all.

// ServiceAccount is the account of wahook's service user, streams and
// buckets, on the embedded server and in deployments/nats.
const ServiceAccount = "WAHOOK"

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
		case seen[userToken(user)]:
			return nil, fmt.Errorf("natsbroker: subscriber %q given twice (names that differ only in '.' and '_' count as one)", user)
		}
		seen[userToken(user)] = true
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

// SubscriberReads are the JetStream requests a subscriber's account imports
// from ServiceAccount: account info, stream names, lists and info, stored
// and direct message gets (KV Get uses them). None has a side effect.
var SubscriberReads = []string{
	"$JS.API.INFO",
	"$JS.API.STREAM.NAMES",
	"$JS.API.STREAM.LIST",
	"$JS.API.STREAM.INFO.*",
	"$JS.API.STREAM.MSG.GET.*",
	"$JS.API.DIRECT.GET.>",
}

// SubscriberEvents is what a subscriber's account imports as a stream of
// live events (core NATS), and what its users may subscribe to beside
// their inboxes.
const SubscriberEvents = "wahook.>"

// ConsumerRequests are the subjects through which a subscriber uses one of
// its consumers, naming the stream and the consumer literally: info, pull
// requests, and acknowledgements (ack, nak, term, in progress) in both of
// nats-server's reply forms, $JS.ACK.<stream>.<consumer> and five tokens,
// and $JS.ACK.<domain>.<account hash>.<stream>.<consumer> and five or more.
// The token counts keep either form from matching another consumer's acks.
func ConsumerRequests(stream, consumer string) []string {
	return []string{
		"$JS.API.CONSUMER.INFO." + stream + "." + consumer,
		"$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer,
		"$JS.ACK." + stream + "." + consumer + ".*.*.*.*.*",
		"$JS.ACK.*.*." + stream + "." + consumer + ".*.*.*.*.>",
	}
}

// SubscriberPermissions are the permissions of a subscriber user whose
// consumers are consumers: publish only the reads and its own consumers'
// requests, subscribe only to wahook's events and inboxes. Consumer names
// are literal: nothing reaches wahook's durable consumers or another
// subscriber's.
func SubscriberPermissions(consumers []SubscriberConsumer) *server.Permissions {
	publish := append([]string(nil), SubscriberReads...)
	for _, c := range consumers {
		publish = append(publish, ConsumerRequests(c.Stream(), c.Durable())...)
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: publish},
		Subscribe: &server.SubjectPermission{Allow: []string{SubscriberEvents, "_INBOX.>"}},
	}
}

// SubscriberAccount names a subscriber's account on the embedded server.
func SubscriberAccount(user string) string { return "SUBSCRIBER_" + userToken(user) }

// userToken is user as account and consumer names carry it: they take no
// '.'. Two users with one token are refused.
func userToken(user string) string { return strings.ReplaceAll(user, ".", "_") }

// AccountsConfig is the embedded server's accounts for subs and their
// consumers in nats-server's configuration syntax, without users
// (configureAccess adds them, so no password is ever in a configuration
// text); deployments/nats/nats-server.conf holds the same for its
// subscriber. Names and subjects in it are letters, digits and "$._-*>"
// only, as the parsers check.
func AccountsConfig(subs []Subscriber, consumers []SubscriberConsumer) string {
	var b strings.Builder
	fmt.Fprintf(&b, "accounts {\n  %q: {\n    jetstream: enabled\n    exports: [\n", ServiceAccount)
	var all []string
	for _, s := range subs {
		all = append(all, strconv.Quote(SubscriberAccount(s.User)))
	}
	if len(subs) > 0 {
		to := "[" + strings.Join(all, ", ") + "]"
		fmt.Fprintf(&b, "      {stream: %q, accounts: %s}\n", SubscriberEvents, to)
		for _, subj := range SubscriberReads {
			fmt.Fprintf(&b, "      {service: %q, %saccounts: %s}\n", subj, responseType(subj), to)
		}
	}
	for _, c := range consumers {
		for _, subj := range ConsumerRequests(c.Stream(), c.Durable()) {
			fmt.Fprintf(&b, "      {service: %q, %saccounts: [%q]}\n", subj, responseType(subj), SubscriberAccount(c.User))
		}
	}
	b.WriteString("    ]\n  }\n")
	for _, s := range subs {
		fmt.Fprintf(&b, "  %q: {\n    imports: [\n", SubscriberAccount(s.User))
		fmt.Fprintf(&b, "      {stream: {account: %q, subject: %q}}\n", ServiceAccount, SubscriberEvents)
		imports := append([]string(nil), SubscriberReads...)
		for _, c := range consumers {
			if c.User == s.User {
				imports = append(imports, ConsumerRequests(c.Stream(), c.Durable())...)
			}
		}
		for _, subj := range imports {
			fmt.Fprintf(&b, "      {service: {account: %q, subject: %q}}\n", ServiceAccount, subj)
		}
		b.WriteString("    ]\n  }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// responseType says which requests get more than one answer: pull requests
// and batched direct gets.
func responseType(subject string) string {
	if strings.HasPrefix(subject, "$JS.API.CONSUMER.MSG.NEXT.") || subject == "$JS.API.DIRECT.GET.>" {
		return "response_type: stream, "
	}
	return ""
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

// configureAccess sets the server's accounts and users (contract section
// 8) and returns the service user.
func configureAccess(opts *server.Options, cfg EmbeddedConfig) (Auth, error) {
	service, err := serviceAuth(cfg)
	if err != nil {
		return Auth{}, err
	}
	byUser := map[string][]SubscriberConsumer{}
	tokens := map[string]string{}
	for _, s := range cfg.Subscribers {
		switch {
		case s.User == service.User:
			return Auth{}, fmt.Errorf("natsbroker: embedded server: subscriber %q is the service user", s.User)
		case !validUser(s.User) || s.Password == "":
			return Auth{}, fmt.Errorf("natsbroker: embedded server: subscriber %q: invalid user name or empty password", s.User)
		case tokens[userToken(s.User)] != "":
			return Auth{}, fmt.Errorf("natsbroker: embedded server: subscribers %q and %q differ only in '.' and '_'", tokens[userToken(s.User)], s.User)
		}
		tokens[userToken(s.User)] = s.User
		byUser[s.User] = nil
	}
	if err := validateConsumers(cfg.SubscriberConsumers); err != nil {
		return Auth{}, fmt.Errorf("natsbroker: embedded server: %w", err)
	}
	for _, c := range cfg.SubscriberConsumers {
		if _, ok := byUser[c.User]; !ok {
			return Auth{}, fmt.Errorf("natsbroker: embedded server: consumer %s is for %q, who is not a subscriber", c.Durable(), c.User)
		}
		byUser[c.User] = append(byUser[c.User], c)
	}
	if err := opts.ProcessConfigString(AccountsConfig(cfg.Subscribers, cfg.SubscriberConsumers)); err != nil {
		return Auth{}, fmt.Errorf("natsbroker: embedded server: accounts: %w", err)
	}
	accounts := map[string]*server.Account{}
	for _, a := range opts.Accounts {
		accounts[a.Name] = a
	}
	opts.Users = []*server.User{{Username: service.User, Password: service.Password, Account: accounts[ServiceAccount]}}
	for _, s := range cfg.Subscribers {
		opts.Users = append(opts.Users, &server.User{Username: s.User, Password: s.Password,
			Account: accounts[SubscriberAccount(s.User)], Permissions: SubscriberPermissions(byUser[s.User])})
	}
	return service, nil
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
