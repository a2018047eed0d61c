package transport

import (
	"context"
	"fmt"
	"sync"
)

// MemNetwork is an in-memory network: listeners are named, streams are
// buffered pipes with a bounded window (a writer blocks while it is full, as
// under QUIC flow control). It is safe for concurrent use.
type MemNetwork struct {
	mu        sync.Mutex
	listeners map[string]*memListener
	window    int
}

// NewMemNetwork returns an empty network whose streams buffer up to window
// bytes in each direction (0 means 1 MiB).
func NewMemNetwork(window int) *MemNetwork {
	if window <= 0 {
		window = 1 << 20
	}
	return &MemNetwork{listeners: map[string]*memListener{}, window: window}
}

// Transport returns the view of the network from the node called name: its
// dials are seen by listeners as coming from name.
func (n *MemNetwork) Transport(name string) Transport { return memTransport{n: n, name: name} }

type memTransport struct {
	n    *MemNetwork
	name string
}

func (t memTransport) Listen(addr string) (Listener, error) {
	t.n.mu.Lock()
	defer t.n.mu.Unlock()
	if _, ok := t.n.listeners[addr]; ok {
		return nil, fmt.Errorf("transport: address %q in use", addr)
	}
	l := &memListener{n: t.n, addr: addr, ch: make(chan Stream), done: make(chan struct{})}
	t.n.listeners[addr] = l
	return l, nil
}

func (t memTransport) Dial(ctx context.Context, addr string) (Stream, error) {
	t.n.mu.Lock()
	l := t.n.listeners[addr]
	t.n.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("transport: dial %q: connection refused", addr)
	}
	ab, ba := newPipe(t.n.window), newPipe(t.n.window)
	local := &memStream{r: ba, w: ab, peer: addr}
	remote := &memStream{r: ab, w: ba, peer: t.name}
	local.other, remote.other = remote, local
	select {
	case l.ch <- remote:
		return local, nil
	case <-l.done:
		return nil, fmt.Errorf("transport: dial %q: connection refused", addr)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type memListener struct {
	n    *MemNetwork
	addr string
	ch   chan Stream
	once sync.Once
	done chan struct{}
}

func (l *memListener) Accept(ctx context.Context) (Stream, error) {
	select {
	case s := <-l.ch:
		return s, nil
	case <-l.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *memListener) Addr() string { return l.addr }

func (l *memListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.n.mu.Lock()
		delete(l.n.listeners, l.addr)
		l.n.mu.Unlock()
	})
	return nil
}

type memStream struct {
	r, w  *pipe
	peer  string
	other *memStream
}

func (s *memStream) Read(p []byte) (int, error)  { return s.r.read(p) }
func (s *memStream) Write(p []byte) (int, error) { return s.w.write(p) }
func (s *memStream) Peer() string                { return s.peer }

// Close ends both directions for both ends, as closing a connection does.
func (s *memStream) Close() error {
	s.r.close()
	s.w.close()
	return nil
}

// pipe is a one-way byte buffer of bounded size.
type pipe struct {
	mu     sync.Mutex
	cond   sync.Cond
	buf    []byte
	window int
	closed bool
}

func newPipe(window int) *pipe {
	p := &pipe{window: window}
	p.cond.L = &p.mu
	return p
}

func (p *pipe) read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.buf) == 0 && !p.closed {
		p.cond.Wait()
	}
	if len(p.buf) == 0 {
		return 0, ErrClosed
	}
	n := copy(b, p.buf)
	p.buf = p.buf[n:]
	if len(p.buf) == 0 {
		p.buf = nil
	}
	p.cond.Broadcast()
	return n, nil
}

func (p *pipe) write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for len(b) > 0 {
		for len(p.buf) >= p.window && !p.closed {
			p.cond.Wait()
		}
		if p.closed {
			return n, ErrClosed
		}
		m := min(len(b), p.window-len(p.buf))
		p.buf = append(p.buf, b[:m]...)
		b = b[m:]
		n += m
		p.cond.Broadcast()
	}
	return n, nil
}

func (p *pipe) close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
}
