package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// ALPN is the application protocol negotiated on replication connections.
const ALPN = "logkv-repl/1"

// QUICOptions configure a QUIC transport.
type QUICOptions struct {
	// Identity gives the node's certificate and the CAs it trusts for each
	// new handshake: an *Identity, or a *Reloader that follows its files.
	// Required.
	Identity IdentitySource
	// ServerName is the name the dialer checks the leader's certificate
	// against; empty means the host part of the dialed address.
	ServerName string
	// IdleTimeout closes a connection silent for this long; 0 means 30s.
	IdleTimeout time.Duration
	// KeepAlive is the keep-alive period, which must be below IdleTimeout;
	// 0 means IdleTimeout/3.
	KeepAlive time.Duration
	// HandshakeTimeout bounds the TLS handshake; 0 means 10s.
	HandshakeTimeout time.Duration
	// Logger receives refused connections with their reason; nil discards.
	Logger *slog.Logger
	// ListenPacket, if set, makes the UDP sockets (one per listener, one per
	// dialed connection) instead of net.ListenPacket; tests use it to open
	// them in another network namespace. addr is "" for a dialer's socket.
	ListenPacket func(addr string) (net.PacketConn, error)
}

// QUIC is a Transport over QUIC with mutual TLS.
type QUIC struct {
	o QUICOptions
}

// NewQUIC returns a QUIC transport.
func NewQUIC(o QUICOptions) (*QUIC, error) {
	if o.Identity == nil || o.Identity.Current() == nil {
		return nil, errors.New("transport: QUIC needs an Identity (certificate, key and CA)")
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 30 * time.Second
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = o.IdleTimeout / 3
	}
	if o.KeepAlive >= o.IdleTimeout {
		return nil, fmt.Errorf("transport: KeepAlive %v must be below IdleTimeout %v", o.KeepAlive, o.IdleTimeout)
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &QUIC{o: o}, nil
}

func (q *QUIC) config() *quic.Config {
	return &quic.Config{
		MaxIdleTimeout:                 q.o.IdleTimeout,
		KeepAlivePeriod:                q.o.KeepAlive,
		HandshakeIdleTimeout:           q.o.HandshakeTimeout,
		InitialStreamReceiveWindow:     4 << 20,
		MaxStreamReceiveWindow:         32 << 20,
		InitialConnectionReceiveWindow: 4 << 20,
		MaxConnectionReceiveWindow:     48 << 20,
		MaxIncomingStreams:             4,
		MaxIncomingUniStreams:          -1,
	}
}

// Listen listens on a UDP address ("127.0.0.1:0" for a free port).
//
// Followers must present a certificate signed by one of the Identity's CAs,
// valid now and for client authentication: what tls.RequireAndVerifyClientCert
// checks. The check is made here (verifyClient) rather than by crypto/tls,
// because crypto/tls refuses a handshake without telling the server's
// program, and a refused follower must be logged with its address and the
// reason.
//
// Each handshake takes the certificate and CAs the Identity source gives at
// that moment, so a renewed certificate or CA serves new connections without
// a restart.
func (q *QUIC) Listen(addr string) (Listener, error) {
	tc := serverTLS(q.o)
	// The socket is always ours, never quic.ListenAddr's: quic-go keeps a
	// socket it made open after the listener closes, until every connection
	// accepted on it has drained, so a leader that stepped down and was
	// elected again within that time could not listen on its address again
	// ("address already in use", issue #17). Close closes ours at once.
	listenPacket := q.o.ListenPacket
	if listenPacket == nil {
		listenPacket = func(addr string) (net.PacketConn, error) { return net.ListenPacket("udp", addr) }
	}
	pc, err := listenPacket(addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s: %w", addr, err)
	}
	ln, err := quic.Listen(pc, tc, q.config())
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("transport: listen %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &quicListener{q: q, ln: ln, pc: pc, ch: make(chan Stream), ctx: ctx, cancel: cancel, conns: make(map[*quic.Conn]struct{})}
	l.wg.Go(l.loop)
	return l, nil
}

// serverTLS is a listener's TLS configuration: TLS 1.3, ALPN, the
// certificate o.Identity gives at each handshake, and the client's checked
// by verifyClient, which logs a refused one.
func serverTLS(o QUICOptions) *tls.Config {
	base := &tls.Config{
		NextProtos: []string{ALPN},
		MinVersion: tls.VersionTLS13,
		// The client must send a certificate and prove it holds its key
		// (TLS 1.3 CertificateVerify); verifyClient decides whether it is
		// one we trust.
		ClientAuth: tls.RequestClientCert,
	}
	tc := base.Clone()
	tc.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		// One identity for the whole handshake: the certificate we show
		// and the CAs we check the follower's against come from one load.
		id := o.Identity.Current()
		c := base.Clone()
		c.Certificates = []tls.Certificate{id.Cert}
		var peer net.Addr
		if hello.Conn != nil {
			peer = hello.Conn.RemoteAddr()
		}
		c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			err := verifyClient(raw, id.CAs, time.Now())
			if err != nil {
				o.Logger.Warn("replication connection refused", "peer", peer, "reason", err)
			}
			return err
		}
		return c, nil
	}
	return tc
}

// clientTLS is a dialer's TLS configuration for addr, with the identity
// o.Identity gives now.
func clientTLS(o QUICOptions, addr string) (*tls.Config, error) {
	name := o.ServerName
	if name == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
		}
		name = host
	}
	id := o.Identity.Current() // the identity for this handshake
	return &tls.Config{
		Certificates: []tls.Certificate{id.Cert},
		RootCAs:      id.CAs,
		ServerName:   name,
		NextProtos:   []string{ALPN},
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// Dial connects to a leader and opens the replication stream. A refused
// handshake is logged with its reason and returned.
func (q *QUIC) Dial(ctx context.Context, addr string) (Stream, error) {
	tc, err := clientTLS(q.o, addr)
	if err != nil {
		return nil, err
	}
	var conn *quic.Conn
	var pc net.PacketConn
	if q.o.ListenPacket != nil {
		var ua *net.UDPAddr
		if ua, err = net.ResolveUDPAddr("udp", addr); err != nil {
			return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
		}
		if pc, err = q.o.ListenPacket(""); err != nil {
			return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
		}
		conn, err = quic.Dial(ctx, pc, ua, tc, q.config())
	} else {
		conn, err = quic.DialAddr(ctx, addr, tc, q.config())
	}
	if err != nil {
		if pc != nil {
			pc.Close()
		}
		q.o.Logger.Warn("replication connection refused", "addr", addr, "reason", err)
		return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		conn.CloseWithError(0, "")
		if pc != nil {
			pc.Close()
		}
		if refused(err) {
			q.o.Logger.Warn("replication connection refused", "addr", addr, "reason", err)
		}
		return nil, fmt.Errorf("transport: open stream to %s: %w", addr, err)
	}
	return &quicStream{conn: conn, st: st, pc: pc, peer: peerName(conn), refusal: q.o.Logger.With("addr", addr)}, nil
}

// refused reports whether err is the peer refusing the TLS handshake (a
// QUIC CRYPTO_ERROR carrying a TLS alert).
//
// Under TLS 1.3 the dialer's handshake completes before the leader has
// checked the dialer's certificate, so a refused follower may learn of it
// from Dial, from opening the stream, or from its first Read or Write,
// depending on when the leader's alert arrives. Each of those logs it, so
// that the dialing side always says why.
func refused(err error) bool {
	var te *quic.TransportError
	return errors.As(err, &te) && te.ErrorCode.IsCryptoError()
}

// verifyClient checks a follower's certificate chain as crypto/tls does for
// tls.RequireAndVerifyClientCert: a certificate is required, and the first
// must chain (through the others) to one of cas, be valid at now, and allow
// client authentication.
func verifyClient(raw [][]byte, cas *x509.CertPool, now time.Time) error {
	if len(raw) == 0 {
		return errors.New("tls: certificate required: the follower sent no certificate (give it one made by kvnode certs)")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, b := range raw {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return fmt.Errorf("tls: bad client certificate: %w", err)
		}
		certs[i] = c
	}
	opts := x509.VerifyOptions{
		Roots:         cas,
		CurrentTime:   now,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := certs[0].Verify(opts); err != nil {
		return fmt.Errorf("tls: failed to verify client certificate %q: %w", certs[0].Subject.CommonName, err)
	}
	return nil
}

func peerName(conn *quic.Conn) string {
	if certs := conn.ConnectionState().TLS.PeerCertificates; len(certs) > 0 {
		return certs[0].Subject.CommonName
	}
	return conn.RemoteAddr().String()
}

type quicListener struct {
	q      *QUIC
	ln     *quic.Listener
	pc     net.PacketConn // the listening socket, ours to close
	ch     chan Stream
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	// conns are the connections accepted and not yet closed: Close closes
	// them with a CONNECTION_CLOSE before the socket under them, so their
	// followers learn at once rather than at their idle timeout.
	mu    sync.Mutex
	conns map[*quic.Conn]struct{}
}

// track records an accepted connection until it ends, and reports false if
// the listener is closed (the caller closes conn).
func (l *quicListener) track(conn *quic.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns == nil {
		return false
	}
	l.conns[conn] = struct{}{}
	context.AfterFunc(conn.Context(), func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.conns, conn)
	})
	return true
}

// loop accepts connections, and for each the stream the dialer opens.
func (l *quicListener) loop() {
	for {
		conn, err := l.ln.Accept(l.ctx)
		if err != nil {
			return
		}
		if !l.track(conn) {
			conn.CloseWithError(0, "listener closed")
			return
		}
		l.wg.Go(func() {
			ctx, cancel := context.WithTimeout(l.ctx, l.q.o.HandshakeTimeout)
			defer cancel()
			st, err := conn.AcceptStream(ctx)
			if err != nil {
				l.q.o.Logger.Warn("replication connection without a stream", "peer", conn.RemoteAddr(), "err", err)
				conn.CloseWithError(1, "no stream")
				return
			}
			s := &quicStream{conn: conn, st: st, peer: peerName(conn)}
			select {
			case l.ch <- s:
			case <-l.ctx.Done():
				s.Close()
			}
		})
	}
}

func (l *quicListener) Accept(ctx context.Context) (Stream, error) {
	return accept(ctx, l.ch, l.ctx)
}

// accept is a listener's Accept: the next stream its accept loop handed
// over on ch, ErrClosed once the listener's own context (closed) ends, or
// ctx's error.
func accept(ctx context.Context, ch <-chan Stream, closed context.Context) (Stream, error) {
	select {
	case s := <-ch:
		return s, nil
	case <-closed.Done():
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *quicListener) Addr() string { return l.ln.Addr().String() }

func (l *quicListener) Close() error {
	l.once.Do(func() {
		l.cancel()
		l.ln.Close()
		l.wg.Wait()
		l.mu.Lock()
		conns := l.conns
		l.conns = nil
		l.mu.Unlock()
		for conn := range conns {
			conn.CloseWithError(0, "listener closed")
		}
		// Synchronously: once Close returns, the address is free to
		// listen on again.
		l.pc.Close()
	})
	return nil
}

type quicStream struct {
	conn *quic.Conn
	st   *quic.Stream
	pc   net.PacketConn // ours to close, if ListenPacket made it
	peer string
	once sync.Once

	// refusal, on a dialed stream, logs a refused handshake that only the
	// first Read or Write found (see refused); nil on accepted streams.
	refusal    *slog.Logger
	refusalLog sync.Once
}

func (s *quicStream) Read(p []byte) (int, error) {
	n, err := s.st.Read(p)
	if err != nil {
		s.logRefusal(err)
	}
	return n, err
}

func (s *quicStream) Write(p []byte) (int, error) {
	n, err := s.st.Write(p)
	if err != nil {
		s.logRefusal(err)
	}
	return n, err
}

// logRefusal logs err once if it is the leader refusing this dialer's
// certificate; the error is returned to the caller after the log line is
// written, so whoever sees the error can find the line.
func (s *quicStream) logRefusal(err error) {
	if s.refusal == nil || !refused(err) {
		return
	}
	s.refusalLog.Do(func() { s.refusal.Warn("replication connection refused", "reason", err) })
}
func (s *quicStream) Peer() string { return s.peer }

// Close aborts the stream and its connection. It cancels the write side
// rather than closing it: Stream.Close only marks the end of the data (FIN),
// after which quic-go's connection shutdown no longer fails a Write blocked
// on flow control, so a leader stopping while a slow follower's sender was
// mid-Write waited for it forever.
func (s *quicStream) Close() error {
	s.once.Do(func() {
		s.st.CancelRead(0)
		s.st.CancelWrite(0)
		s.conn.CloseWithError(0, "closed")
		if s.pc != nil {
			s.pc.Close()
		}
	})
	return nil
}
