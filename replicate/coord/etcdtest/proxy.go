package etcdtest

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP connections to an etcd client endpoint, and can cut a
// client off as a network partition does: silently. Partition makes every
// connection, open or new, drop what it carries in both directions while
// staying open, so the client sees no reset, only silence, until its own
// timeouts fire; Heal closes the connections that lost bytes and forwards
// again.
type Proxy struct {
	// Endpoint is the proxy's client URL, http://127.0.0.1:PORT.
	Endpoint string

	ln          net.Listener
	target      string
	partitioned atomic.Bool
	mu          sync.Mutex
	conns       map[net.Conn]bool
}

// NewProxy starts a proxy to s for t, closed at t's end.
func NewProxy(t testing.TB, s *Server) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Endpoint: "http://" + ln.Addr().String(), ln: ln, target: strings.TrimPrefix(s.Endpoint, "http://"), conns: map[net.Conn]bool{}}
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
	})
	return p
}

// Partition cuts the proxy's clients off from etcd, silently.
func (p *Proxy) Partition() { p.partitioned.Store(true) }

// Heal reconnects them: connections open during the partition are closed
// (their streams lost bytes), new ones are forwarded.
func (p *Proxy) Heal() {
	p.partitioned.Store(false)
	p.closeAll()
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *Proxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = true
	}
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.track(c, u)
		go p.pump(u, c)
		go p.pump(c, u)
	}
}

// pump copies from src to dst, dropping what it reads while partitioned.
func (p *Proxy) pump(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.partitioned.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or closed: the deferred closes end the other direction too
		}
	}
}
