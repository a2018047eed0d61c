package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// TCP is a Transport over TCP with mutual TLS 1.3: the identity, the
// certificate checks and the refusal logs of the QUIC transport it is made
// from (QUIC.TCP), for bulk streams. QUIC in user space seals, sends and
// acknowledges a datagram of about 1.4 KB at a time; the kernel's TCP on
// loopback moves 64 KB segments, and TLS seals 16 KB records. Streaming 1 MiB
// writes one way (BenchmarkQUICStream, BenchmarkTCPStream) costs the two
// processes together about a third of the CPU QUIC does, which is what bounds
// a slot move's copy (docs/cluster.md, "move rate"). Replication keeps QUIC:
// its streams are many small writes, and its listener is long established.
//
// A stream is one TCP connection. A dead peer is found by TCP keep-alives
// (idle, interval KeepAlive, 3 probes: about IdleTimeout when KeepAlive is
// its default third) and a Write that cannot progress for IdleTimeout fails
// (a write deadline set before each), so neither side waits on a vanished
// peer for TCP's retransmission timeout, which is many minutes.
type TCP struct {
	o QUICOptions
}

// TCP returns a transport over TCP with q's identity, options and checks.
// (QUICOptions.ListenPacket does not apply.)
func (q *QUIC) TCP() *TCP { return &TCP{o: q.o} }

// Listen listens on a TCP address ("127.0.0.1:0" for a free port). Each
// accepted connection's TLS handshake runs on its own goroutine, bounded by
// HandshakeTimeout, so a slow or silent dialer holds up no other.
func (t *TCP) Listen(addr string) (Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &tcpListener{t: t, ln: ln, tc: serverTLS(t.o), ch: make(chan Stream), ctx: ctx, cancel: cancel}
	l.wg.Go(l.loop)
	return l, nil
}

// Dial connects to addr and completes the TLS handshake. Under TLS 1.3 the
// listener checks this side's certificate after the dialer's handshake
// ended, so a refusal may come from the first Read or Write instead; both
// log it, as the QUIC transport's do.
func (t *TCP) Dial(ctx context.Context, addr string) (Stream, error) {
	tc, err := clientTLS(t.o, addr)
	if err != nil {
		return nil, err
	}
	d := tls.Dialer{NetDialer: t.netDialer(), Config: tc}
	hctx, cancel := context.WithTimeout(ctx, t.o.HandshakeTimeout)
	defer cancel()
	c, err := d.DialContext(hctx, "tcp", addr)
	if err != nil {
		t.o.Logger.Warn("replication connection refused", "addr", addr, "reason", err)
		return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
	}
	tcs := c.(*tls.Conn)
	return &tcpStream{c: tcs, peer: tlsPeer(tcs), idle: t.o.IdleTimeout, refusal: t.o.Logger.With("addr", addr)}, nil
}

func (t *TCP) netDialer() *net.Dialer {
	return &net.Dialer{KeepAliveConfig: t.keepAlive()}
}

func (t *TCP) keepAlive() net.KeepAliveConfig {
	return net.KeepAliveConfig{Enable: true, Idle: t.o.KeepAlive, Interval: t.o.KeepAlive, Count: 3}
}

// tlsPeer is the name the handshake authenticated: the peer certificate's
// common name.
func tlsPeer(c *tls.Conn) string {
	if certs := c.ConnectionState().PeerCertificates; len(certs) > 0 {
		return certs[0].Subject.CommonName
	}
	return c.RemoteAddr().String()
}

type tcpListener struct {
	t      *TCP
	ln     net.Listener
	tc     *tls.Config
	ch     chan Stream
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// loop accepts connections and hands each to Accept once its handshake
// succeeded.
func (l *tcpListener) loop() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return // closed (a temporary error on a loopback listener is not expected)
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetKeepAliveConfig(l.t.keepAlive()) // best effort: the write deadline still bounds a dead peer's stream
		}
		l.wg.Go(func() {
			s := tls.Server(c, l.tc)
			ctx, cancel := context.WithTimeout(l.ctx, l.t.o.HandshakeTimeout)
			defer cancel()
			if err := s.HandshakeContext(ctx); err != nil {
				// A refused certificate was logged by verifyClient.
				_ = c.Close() // the handshake failed; nothing was sent on it
				return
			}
			st := &tcpStream{c: s, peer: tlsPeer(s), idle: l.t.o.IdleTimeout}
			select {
			case l.ch <- st:
			case <-l.ctx.Done():
				_ = st.Close() // the listener closed before Accept took it
			}
		})
	}
}

func (l *tcpListener) Accept(ctx context.Context) (Stream, error) {
	select {
	case s := <-l.ch:
		return s, nil
	case <-l.ctx.Done():
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *tcpListener) Addr() string { return l.ln.Addr().String() }

// Close stops listening and waits for the handshakes in progress. Unlike
// the QUIC listener's, it leaves the streams it accepted open: each is its
// own connection, which its owner closes.
func (l *tcpListener) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		err = l.ln.Close()
		l.wg.Wait()
	})
	return err
}

type tcpStream struct {
	c    *tls.Conn
	peer string
	idle time.Duration
	once sync.Once

	// refusal, on a dialed stream, logs once a refused handshake that
	// only the first Read or Write found; nil on accepted streams.
	refusal    interface{ Warn(string, ...any) }
	refusalLog sync.Once
}

func (s *tcpStream) Read(p []byte) (int, error) {
	n, err := s.c.Read(p)
	if err != nil {
		s.logRefusal(err)
	}
	return n, err
}

// Write fails if the peer takes none of p for the idle timeout.
func (s *tcpStream) Write(p []byte) (int, error) {
	if err := s.c.SetWriteDeadline(time.Now().Add(s.idle)); err != nil {
		return 0, err
	}
	n, err := s.c.Write(p)
	if err != nil {
		s.logRefusal(err)
	}
	return n, err
}

// logRefusal logs err once if it is a TLS alert from the listener (it
// refused this dialer's certificate): crypto/tls reports a received alert
// as a net.OpError "remote error".
func (s *tcpStream) logRefusal(err error) {
	var op *net.OpError
	if s.refusal == nil || !errors.As(err, &op) || op.Op != "remote error" {
		return
	}
	s.refusalLog.Do(func() { s.refusal.Warn("replication connection refused", "reason", err) })
}

func (s *tcpStream) Peer() string { return s.peer }

// Close closes the connection at once (no close_notify wait: a blocked
// Write returns), and is safe twice.
func (s *tcpStream) Close() error {
	var err error
	s.once.Do(func() { err = s.c.NetConn().Close() })
	return err
}
