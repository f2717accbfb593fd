package natsbroker

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
)

// lossyProxy relays NATS connections to a server and loses, on the way to
// the client, what a test tells it to: the message frames whose payload
// holds a marker, or everything (a connection that died on the server's
// side without either end noticing yet). The server sees every frame it
// sends as sent.
type lossyProxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu        sync.Mutex
	conns     []net.Conn
	marker    []byte
	dropped   chan struct{} // closed when a frame with marker was dropped
	blackhole bool
}

func startLossyProxy(t testing.TB, target string) *lossyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	p := &lossyProxy{t: t, ln: ln, target: target}
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *lossyProxy) URL() string { return "nats://" + p.ln.Addr().String() }

func (p *lossyProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() {
			io.Copy(s, c)
			s.Close()
			c.Close()
		}()
		go func() {
			p.down(c, s)
			s.Close()
			c.Close()
		}()
	}
}

// down relays the server's frames to the client, dropping those it is
// told to.
func (p *lossyProxy) down(client io.Writer, server io.Reader) {
	r := bufio.NewReaderSize(server, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var payload []byte
		if f := bytes.Fields(line); len(f) >= 4 && (string(f[0]) == "MSG" || string(f[0]) == "HMSG") {
			n, err := strconv.Atoi(string(f[len(f)-1]))
			if err != nil {
				return
			}
			payload = make([]byte, n+2) // and its CRLF
			if _, err := io.ReadFull(r, payload); err != nil {
				return
			}
		}
		if p.drop(payload) {
			continue
		}
		if _, err := client.Write(append(line, payload...)); err != nil {
			return
		}
	}
}

func (p *lossyProxy) drop(payload []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.blackhole {
		return true
	}
	if p.marker != nil && bytes.Contains(payload, p.marker) {
		p.marker = nil
		close(p.dropped)
		return true
	}
	return false
}

// loseNext makes the proxy lose the next message frame holding marker; the
// channel returned is closed once it did.
func (p *lossyProxy) loseNext(marker string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marker, p.dropped = []byte(marker), make(chan struct{})
	return p.dropped
}

// loseAll makes the proxy lose everything the server sends until cut.
func (p *lossyProxy) loseAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackhole = true
}

// cut closes every relayed connection; new ones are relayed faithfully.
func (p *lossyProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns, p.blackhole = nil, false
}
