package natsbroker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/wahook/wahook/pkg/internal/testtls"
)

// runExternal starts a nats-server with JetStream as a separate server
// would be configured (users, nkeys, token, operator mode, TLS) and returns
// its client URL.
func runExternal(t *testing.T, edit func(*server.Options)) string {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}
	edit(opts)
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(20 * time.Second) {
		t.Fatal("external server not ready")
	}
	return srv.ClientURL()
}

// tryConnect connects, publishes one event and closes; it returns the
// connect error.
func tryConnect(t *testing.T, url string, a Auth) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Connect(ctx, Config{URL: url, Auth: a, ReconnectWait: 50 * time.Millisecond})
	if err != nil {
		return err
	}
	defer b.Close(ctx)
	if err := b.Publish(ctx, ingressMsg("EXT", 1, jsonBody(1))); err != nil {
		t.Errorf("publish: %v", err)
	}
	return nil
}

func TestExternalAuth(t *testing.T) {
	dir := t.TempDir()
	nkp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	npub, _ := nkp.PublicKey()
	seed, _ := nkp.Seed()
	seedFile := filepath.Join(dir, "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("user and password", func(t *testing.T) {
		url := runExternal(t, func(o *server.Options) {
			o.Users = []*server.User{{Username: "svc", Password: "s3cret"}}
		})
		if err := tryConnect(t, url, Auth{User: "svc", Password: "s3cret"}); err != nil {
			t.Fatalf("right password: %v", err)
		}
		if err := tryConnect(t, url, Auth{User: "svc", Password: "wrong"}); err == nil {
			t.Fatal("wrong password connected")
		}
		if err := tryConnect(t, url, Auth{}); err == nil {
			t.Fatal("anonymous client connected")
		}
	})

	t.Run("token", func(t *testing.T) {
		url := runExternal(t, func(o *server.Options) { o.Authorization = "tok-123" })
		if err := tryConnect(t, url, Auth{Token: "tok-123"}); err != nil {
			t.Fatalf("right token: %v", err)
		}
		if err := tryConnect(t, url, Auth{Token: "tok-456"}); err == nil {
			t.Fatal("wrong token connected")
		}
	})

	t.Run("nkey", func(t *testing.T) {
		url := runExternal(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: npub}} })
		if err := tryConnect(t, url, Auth{NKeyFile: seedFile}); err != nil {
			t.Fatalf("nkey: %v", err)
		}
		other, _ := nkeys.CreateUser()
		otherSeed, _ := other.Seed()
		otherFile := filepath.Join(t.TempDir(), "other.nk")
		if err := os.WriteFile(otherFile, otherSeed, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := tryConnect(t, url, Auth{NKeyFile: otherFile}); err == nil {
			t.Fatal("unknown nkey connected")
		}
	})

	t.Run("creds", func(t *testing.T) {
		okp, _ := nkeys.CreateOperator()
		opub, _ := okp.PublicKey()
		ojwt, err := jwt.NewOperatorClaims(opub).Encode(okp)
		if err != nil {
			t.Fatal(err)
		}
		oc, err := jwt.DecodeOperatorClaims(ojwt)
		if err != nil {
			t.Fatal(err)
		}
		akp, _ := nkeys.CreateAccount()
		apub, _ := akp.PublicKey()
		ac := jwt.NewAccountClaims(apub)
		ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		ajwt, err := ac.Encode(okp)
		if err != nil {
			t.Fatal(err)
		}
		// Operator mode with JetStream needs a system account.
		skp, _ := nkeys.CreateAccount()
		spub, _ := skp.PublicKey()
		sjwt, err := jwt.NewAccountClaims(spub).Encode(okp)
		if err != nil {
			t.Fatal(err)
		}
		ukp, _ := nkeys.CreateUser()
		upub, _ := ukp.PublicKey()
		ujwt, err := jwt.NewUserClaims(upub).Encode(akp)
		if err != nil {
			t.Fatal(err)
		}
		useed, _ := ukp.Seed()
		creds, err := jwt.FormatUserConfig(ujwt, useed)
		if err != nil {
			t.Fatal(err)
		}
		credsFile := filepath.Join(t.TempDir(), "wahook.creds")
		if err := os.WriteFile(credsFile, creds, 0o600); err != nil {
			t.Fatal(err)
		}
		url := runExternal(t, func(o *server.Options) {
			o.TrustedOperators = []*jwt.OperatorClaims{oc}
			r := &server.MemAccResolver{}
			for pub, claims := range map[string]string{apub: ajwt, spub: sjwt} {
				if err := r.Store(pub, claims); err != nil {
					t.Fatal(err)
				}
			}
			o.AccountResolver, o.SystemAccount = r, spub
		})
		if err := tryConnect(t, url, Auth{CredsFile: credsFile}); err != nil {
			t.Fatalf("creds: %v", err)
		}
		if err := tryConnect(t, url, Auth{CredsFile: filepath.Join(t.TempDir(), "missing.creds")}); err == nil {
			t.Fatal("a missing creds file connected")
		}
	})

	t.Run("TLS with client certificate", func(t *testing.T) {
		files := testtls.Generate(t, t.TempDir())
		url := runExternal(t, func(o *server.Options) {
			o.TLSConfig = files.ServerConfig(t)
			o.TLS, o.TLSVerify = true, true
			o.Users = []*server.User{{Username: "svc", Password: "s3cret"}}
		})
		full := Auth{User: "svc", Password: "s3cret", TLSCA: files.CA, TLSCert: files.ClientCert, TLSKey: files.ClientKey}
		if err := tryConnect(t, url, full); err != nil {
			t.Fatalf("TLS: %v", err)
		}
		noCert := full
		noCert.TLSCert, noCert.TLSKey = "", ""
		if err := tryConnect(t, url, noCert); err == nil {
			t.Fatal("connected without a client certificate")
		}
		other := testtls.Generate(t, t.TempDir())
		wrongCA := full
		wrongCA.TLSCA = other.CA
		if err := tryConnect(t, url, wrongCA); err == nil {
			t.Fatal("connected to a server whose certificate the CA did not sign")
		}
	})
}

func TestAuthValidate(t *testing.T) {
	for name, a := range map[string]Auth{
		"two methods":       {User: "u", Password: "p", Token: "t"},
		"password alone":    {Password: "p"},
		"user alone":        {User: "u"},
		"cert without key":  {TLSCert: "c.pem"},
		"creds and nkey":    {CredsFile: "a", NKeyFile: "b"},
		"key without cert":  {TLSKey: "k.pem"},
		"token and creds":   {Token: "t", CredsFile: "a"},
		"nkey and user":     {NKeyFile: "b", User: "u", Password: "p"},
		"missing nkey file": {NKeyFile: filepath.Join(t.TempDir(), "none")},
	} {
		if _, err := a.Options(); err == nil {
			t.Errorf("%s: Options() = nil error", name)
		} else if strings.Contains(err.Error(), "p\"") {
			t.Errorf("%s: error shows a secret: %v", name, err)
		}
	}
}
