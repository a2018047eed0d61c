package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
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
// HandshakeTimeout, so a slow or silent dialer holds up no other; at most
// maxHandshakes run at once, and a connection beyond them is closed at once
// (see tcpListener.loop).
func (t *TCP) Listen(addr string) (Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s: %w", addr, err)
	}
	return t.serve(ln), nil
}

// serve accepts on ln (Listen's, or a test's that injects errors).
func (t *TCP) serve(ln net.Listener) *tcpListener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &tcpListener{t: t, ln: ln, tc: serverTLS(t.o), ch: make(chan Stream), ctx: ctx, cancel: cancel,
		handshakes: make(chan struct{}, maxHandshakes)}
	l.wg.Go(l.loop)
	return l
}

// maxHandshakes bounds the TLS handshakes in flight on one listener. Until
// its handshake ends, a connection is unauthenticated: anyone who can reach
// the port can open one and send nothing for HandshakeTimeout, and each
// holds a goroutine and a file descriptor, which the node's RESP accepts
// and engine files share. A move or a replica opens a connection or two at
// a time, so 32 is far above honest use and far below any descriptor limit.
const maxHandshakes = 32

// Backoff after a failed Accept (EMFILE and the like), as net/http's
// Server.Serve: from acceptRetryMin, doubling, up to acceptRetryMax.
const (
	acceptRetryMin = 5 * time.Millisecond
	acceptRetryMax = time.Second
)

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
		// Not "replication": over TCP this is a slot move's stream (the
		// operator looks at moves, not at replication).
		t.o.Logger.Warn("TCP stream connection failed", "addr", addr, "reason", err)
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
	// handshakes holds a token per handshake in flight (maxHandshakes).
	handshakes chan struct{}
	// refusedAt is when the last excess connection was logged (unix
	// nanoseconds): a flood logs once a second, not once a connection.
	refusedAt atomic.Int64
	// refused counts the connections closed for want of a handshake slot.
	refused atomic.Uint64
}

// loop accepts connections and hands each to Accept once its handshake
// succeeded. An Accept error other than the listener's close (EMFILE when
// the process is out of file descriptors, ENFILE, ENOBUFS) is waited out
// with a backoff and logged, never the loop's end: ending it would leave a
// listener that its owner still advertises and that accepts nothing until
// Close. The loop ends only when the listener is closed, and says so if
// Close did not ask for it.
func (l *tcpListener) loop() {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil {
				return // Close
			}
			if errors.Is(err, net.ErrClosed) {
				l.t.o.Logger.Error("transport: listener closed under it, no longer accepting; restart the node", "addr", l.ln.Addr().String(), "err", err)
				return
			}
			delay = min(max(2*delay, acceptRetryMin), acceptRetryMax)
			l.t.o.Logger.Warn("transport: accept failed; retrying (out of file descriptors? raise the open files limit, ulimit -n)",
				"addr", l.ln.Addr().String(), "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-l.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		select {
		case l.handshakes <- struct{}{}:
		default:
			// Too many handshakes in flight: close this one at once
			// rather than hold its descriptor for HandshakeTimeout.
			_ = c.Close() // nothing was sent on it
			l.logRefused(c.RemoteAddr())
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetKeepAliveConfig(l.t.keepAlive()) // best effort: the write deadline still bounds a dead peer's stream
		}
		l.wg.Go(func() {
			s := tls.Server(c, l.tc)
			ctx, cancel := context.WithTimeout(l.ctx, l.t.o.HandshakeTimeout)
			defer cancel()
			err := s.HandshakeContext(ctx)
			<-l.handshakes // authenticated (or refused): no longer in flight
			if err != nil {
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

// logRefused logs a connection closed for want of a handshake slot, at
// most once a second, with how many were closed so far.
func (l *tcpListener) logRefused(from net.Addr) {
	n := l.refused.Add(1)
	now := time.Now().UnixNano()
	last := l.refusedAt.Load()
	if now-last < int64(time.Second) || !l.refusedAt.CompareAndSwap(last, now) {
		return
	}
	l.t.o.Logger.Warn("transport: too many TLS handshakes in flight; closing new connections until some end",
		"addr", l.ln.Addr().String(), "from", from.String(), "limit", maxHandshakes, "closed_so_far", n)
}

func (l *tcpListener) Accept(ctx context.Context) (Stream, error) {
	return accept(ctx, l.ch, l.ctx)
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
	s.refusalLog.Do(func() { s.refusal.Warn("TCP stream connection refused", "reason", err) })
}

func (s *tcpStream) Peer() string { return s.peer }

// Close closes the connection at once (no close_notify wait: a blocked
// Write returns), and is safe twice.
func (s *tcpStream) Close() error {
	var err error
	s.once.Do(func() { err = s.c.NetConn().Close() })
	return err
}
