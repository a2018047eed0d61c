package transport

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// echo accepts one stream and echoes it back.
func echo(t *testing.T, l Listener) <-chan string {
	peer := make(chan string, 1)
	go func() {
		s, err := l.Accept(context.Background())
		if err != nil {
			close(peer)
			return
		}
		peer <- s.Peer()
		io.Copy(s, s)
		s.Close()
	}()
	return peer
}

func roundTrip(t *testing.T, s Stream, n int) {
	data := bytes.Repeat([]byte("0123456789abcdef"), n/16)
	go func() { s.Write(data) }()
	got := make([]byte, len(data))
	_, err := io.ReadFull(s, got)
	require.NoError(t, err)
	require.Equal(t, data, got)
}

func TestMemNetwork(t *testing.T) {
	n := NewMemNetwork(4 << 10)
	l, err := n.Transport("leader").Listen("leader:1")
	require.NoError(t, err)
	defer l.Close()
	peer := echo(t, l)
	s, err := n.Transport("follower").Dial(context.Background(), "leader:1")
	require.NoError(t, err)
	require.Equal(t, "follower", <-peer)
	require.Equal(t, "leader:1", s.Peer())
	roundTrip(t, s, 1<<20)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	_, err = s.Write([]byte("x"))
	require.ErrorIs(t, err, ErrClosed)

	_, err = n.Transport("f").Dial(context.Background(), "nowhere")
	require.Error(t, err)
	require.NoError(t, l.Close())
	_, err = l.Accept(context.Background())
	require.ErrorIs(t, err, ErrClosed)
}

func quicPair(t *testing.T, server, client *Identity, serverLog, clientLog *slog.Logger) (Listener, *QUIC) {
	st, err := NewQUIC(QUICOptions{Identity: server, Logger: serverLog})
	require.NoError(t, err)
	l, err := st.Listen("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	ct, err := NewQUIC(QUICOptions{Identity: client, Logger: clientLog, IdleTimeout: 5 * time.Second})
	require.NoError(t, err)
	return l, ct
}

// pairFunc makes a listener with the server identity and a transport with
// the client identity, logging to the loggers given (nil: discard).
type pairFunc func(t *testing.T, server, client *Identity, serverLog, clientLog *slog.Logger) (Listener, Transport)

func quicTransportPair(t *testing.T, server, client *Identity, serverLog, clientLog *slog.Logger) (Listener, Transport) {
	return quicPair(t, server, client, serverLog, clientLog)
}

func tcpPair(t *testing.T, server, client *Identity, serverLog, clientLog *slog.Logger) (Listener, Transport) {
	st, err := NewQUIC(QUICOptions{Identity: server, Logger: serverLog})
	require.NoError(t, err)
	l, err := st.TCP().Listen("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	ct, err := NewQUIC(QUICOptions{Identity: client, Logger: clientLog, IdleTimeout: 5 * time.Second})
	require.NoError(t, err)
	return l, ct.TCP()
}

func TestQUICMutualTLS(t *testing.T) { testMutualTLS(t, quicTransportPair) }

// TestTCPMutualTLS: the TCP transport checks certificates and logs refusals
// as the QUIC transport does.
func TestTCPMutualTLS(t *testing.T) { testMutualTLS(t, tcpPair) }

func testMutualTLS(t *testing.T, pair pairFunc) {
	ca, err := NewCA("test CA")
	require.NoError(t, err)
	leader, err := ca.Identity("leader", "127.0.0.1")
	require.NoError(t, err)
	follower, err := ca.Identity("follower", "127.0.0.1")
	require.NoError(t, err)

	t.Run("ok", func(t *testing.T) {
		l, ct := pair(t, leader, follower, nil, nil)
		peer := echo(t, l)
		s, err := ct.Dial(context.Background(), l.Addr())
		require.NoError(t, err)
		defer s.Close()
		roundTrip(t, s, 4<<20)
		require.Equal(t, "follower", <-peer)
		require.Equal(t, "leader", s.Peer())
	})

	other, err := NewCA("other CA")
	require.NoError(t, err)
	stranger, err := other.Identity("stranger", "127.0.0.1")
	require.NoError(t, err)
	expiredCert, expiredKey, err := ca.Issue("old", []string{"127.0.0.1"}, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	require.NoError(t, err)
	expired, err := NewIdentity(expiredCert, expiredKey, ca.CertPEM())
	require.NoError(t, err)
	noCert := &Identity{CAs: follower.CAs}
	strangerTrusting := &Identity{Cert: stranger.Cert, CAs: follower.CAs}

	// reason is what the dialer's error says; leaderLog, when set, is the
	// reason the leader logs (the follower's certificate was refused).
	for _, tc := range []struct {
		name              string
		server, client    *Identity
		reason, leaderLog string
	}{
		{"client from another CA", leader, stranger, "unknown authority", ""}, // it refuses the leader first
		{"client certificate from another CA", leader, strangerTrusting, "certificate", "unknown authority"},
		{"server from another CA", stranger, follower, "unknown authority", ""},
		{"client certificate missing", leader, noCert, "certificate", "certificate required"},
		{"client certificate expired", leader, expired, "certificate", "expired"},
		{"server certificate expired", expired, follower, "expired", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs, leaderLogs syncBuffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			l, ct := pair(t, tc.server, tc.client, slog.New(slog.NewTextHandler(&leaderLogs, nil)), log)
			accepted := make(chan Stream, 1)
			go func() {
				s, err := l.Accept(context.Background())
				if err == nil {
					accepted <- s
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := ct.Dial(ctx, l.Addr())
			if err == nil {
				// TLS 1.3 clients learn of a rejected certificate only when
				// they first read.
				s.Write([]byte("hello"))
				_, err = s.Read(make([]byte, 1))
				s.Close()
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.reason)
			// Whichever call found the refusal (Dial, opening the stream,
			// the first Read or Write) logged it before returning the
			// error: the line is there now, with no wait.
			require.Regexp(t, "(replication|TCP stream) connection (refused|failed)", logs.String())
			require.Contains(t, logs.String(), tc.reason)
			if tc.leaderLog != "" {
				// The leader refused the follower before the alert the
				// follower just read was sent: its log line is written.
				require.Contains(t, leaderLogs.String(), "replication connection refused")
				require.Contains(t, leaderLogs.String(), "peer=127.0.0.1:")
				require.Contains(t, leaderLogs.String(), tc.leaderLog)
			} else {
				require.Empty(t, leaderLogs.String(), "the leader did not refuse this follower")
			}
			select {
			case <-accepted:
				t.Fatal("the leader accepted a stream from an unverified peer")
			default:
			}
		})
	}
}

// TestVerifyClient: the leader's own check of a follower's certificate
// refuses what tls.RequireAndVerifyClientCert refuses.
func TestVerifyClient(t *testing.T) {
	ca, err := NewCA("test CA")
	require.NoError(t, err)
	id, err := ca.Identity("follower", "127.0.0.1")
	require.NoError(t, err)
	other, err := NewCA("other CA")
	require.NoError(t, err)
	stranger, err := other.Identity("stranger", "127.0.0.1")
	require.NoError(t, err)
	now := time.Now()
	require.NoError(t, verifyClient(id.Cert.Certificate, id.CAs, now))
	require.ErrorContains(t, verifyClient(nil, id.CAs, now), "certificate required")
	require.ErrorContains(t, verifyClient([][]byte{[]byte("junk")}, id.CAs, now), "bad client certificate")
	require.ErrorContains(t, verifyClient(stranger.Cert.Certificate, id.CAs, now), "unknown authority")
	require.ErrorContains(t, verifyClient(id.Cert.Certificate, id.CAs, now.Add(20*365*24*time.Hour)), "expired")
}
