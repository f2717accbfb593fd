package natsbroker

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
)

// Auth is how a client proves who it is to a NATS server and how it checks
// the server's certificate. At most one of User (with Password), Token,
// CredsFile and NKeyFile is set; the zero value connects anonymously and
// without TLS (unless the URL says tls://).
type Auth struct {
	// User and Password log in as a user of the server's configuration.
	User, Password string
	// Token is a server-wide authorization token.
	Token string
	// CredsFile is a creds file (user JWT and nkey seed, decentralized
	// auth).
	CredsFile string
	// NKeyFile is a file holding an nkey seed ("SU..."); the server knows
	// the user by its public key.
	NKeyFile string
	// TLSCA is a PEM file of the CAs the server's certificate must chain
	// to; setting it turns TLS on. TLSCert and TLSKey are the client's
	// certificate and key, for servers that verify clients.
	TLSCA, TLSCert, TLSKey string
}

// IsZero reports whether a says nothing: no credentials and no TLS.
func (a Auth) IsZero() bool { return a == Auth{} }

// RegisterFlags declares the -nats-user, -nats-password, -nats-token,
// -nats-creds, -nats-nkey and -nats-tls-* flags on fs, setting a; userHelp
// says what -nats-user is to the program. With ff they are also read from
// WAHOOK_NATS_* variables, the better place for secrets: flags show in
// process listings.
func (a *Auth) RegisterFlags(fs *flag.FlagSet, userHelp string) {
	fs.StringVar(&a.User, "nats-user", "", userHelp)
	fs.StringVar(&a.Password, "nats-password", "", "password of -nats-user")
	fs.StringVar(&a.Token, "nats-token", "", "external NATS: authorization token")
	fs.StringVar(&a.CredsFile, "nats-creds", "", "external NATS: creds file (user JWT and nkey seed)")
	fs.StringVar(&a.NKeyFile, "nats-nkey", "", "external NATS: file holding an nkey seed")
	fs.StringVar(&a.TLSCA, "nats-tls-ca", "", "external NATS: PEM file of the CAs its certificate must chain to (turns TLS on)")
	fs.StringVar(&a.TLSCert, "nats-tls-cert", "", "external NATS: client certificate (PEM)")
	fs.StringVar(&a.TLSKey, "nats-tls-key", "", "external NATS: client key (PEM)")
}

// Validate reports contradictory settings.
func (a Auth) Validate() error {
	n := 0
	for _, set := range []bool{a.User != "", a.Token != "", a.CredsFile != "", a.NKeyFile != ""} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return errors.New("natsbroker: auth: set one of user, token, creds file and nkey file")
	case a.Password != "" && a.User == "":
		return errors.New("natsbroker: auth: a password needs a user")
	case a.User != "" && a.Password == "":
		return errors.New("natsbroker: auth: user without password")
	case (a.TLSCert == "") != (a.TLSKey == ""):
		return errors.New("natsbroker: auth: TLS certificate and key go together")
	}
	return nil
}

// Options are the nats.go options that apply a. Every file is read once
// now, so that a missing or unreadable one is reported at start; the creds
// file is read again at each (re)connect, so replacing it in place rotates
// the credentials without a restart.
func (a Auth) Options() ([]nats.Option, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case a.User != "":
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	case a.Token != "":
		opts = append(opts, nats.Token(a.Token))
	case a.CredsFile != "":
		if _, err := os.ReadFile(a.CredsFile); err != nil {
			return nil, fmt.Errorf("natsbroker: auth: creds file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(a.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("natsbroker: auth: nkey file: %w", err)
		}
		opts = append(opts, o)
	}
	if a.TLSCA != "" {
		opts = append(opts, nats.RootCAs(a.TLSCA))
	}
	if a.TLSCert != "" {
		opts = append(opts, nats.ClientCert(a.TLSCert, a.TLSKey))
	}
	return opts, nil
}
