package transport

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTCPStreamBlockedWrite: a Write to a peer that reads nothing fails
// once it made no progress for the idle timeout (TCP would retry for many
// minutes), and Close unblocks a Write at once.
func TestTCPStreamBlockedWrite(t *testing.T) {
	ca, err := NewCA("test CA")
	require.NoError(t, err)
	leader, err := ca.Identity("leader", "127.0.0.1")
	require.NoError(t, err)
	follower, err := ca.Identity("follower", "127.0.0.1")
	require.NoError(t, err)
	st, err := NewQUIC(QUICOptions{Identity: leader})
	require.NoError(t, err)
	l, err := st.TCP().Listen("127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	accepted := make(chan Stream, 2)
	go func() {
		for {
			s, err := l.Accept(context.Background())
			if err != nil {
				return
			}
			accepted <- s // held open, never read
		}
	}()
	const idle = 300 * time.Millisecond
	ct, err := NewQUIC(QUICOptions{Identity: follower, IdleTimeout: idle})
	require.NoError(t, err)
	big := make([]byte, 64<<20) // more than both sockets' buffers hold

	s, err := ct.TCP().Dial(context.Background(), l.Addr())
	require.NoError(t, err)
	defer s.Close()
	peer := <-accepted
	defer peer.Close()
	require.Equal(t, "leader", s.Peer())
	require.Equal(t, "follower", peer.Peer())
	start := time.Now()
	n, err := s.Write(big)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "a Write the peer does not read times out: %v", err)
	require.Less(t, n, len(big))
	require.GreaterOrEqual(t, time.Since(start), idle)

	ct2, err := NewQUIC(QUICOptions{Identity: follower, IdleTimeout: time.Hour})
	require.NoError(t, err)
	s2, err := ct2.TCP().Dial(context.Background(), l.Addr())
	require.NoError(t, err)
	peer2 := <-accepted
	defer peer2.Close()
	done := make(chan error, 1)
	go func() {
		_, err := s2.Write(big)
		done <- err
	}()
	// Close unblocks the Write whether or not it has blocked yet.
	require.NoError(t, s2.Close())
	require.NoError(t, s2.Close(), "Close twice is safe")
	select {
	case err := <-done:
		require.Error(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not unblock a Write")
	}
}

// tcpTransports is a leader's TCP transport and a follower's, of one CA.
func tcpTransports(t *testing.T, lo, fo QUICOptions) (leader, follower *TCP) {
	ca, err := NewCA("test CA")
	require.NoError(t, err)
	lo.Identity, err = ca.Identity("leader", "127.0.0.1")
	require.NoError(t, err)
	fo.Identity, err = ca.Identity("follower", "127.0.0.1")
	require.NoError(t, err)
	l, err := NewQUIC(lo)
	require.NoError(t, err)
	f, err := NewQUIC(fo)
	require.NoError(t, err)
	return l.TCP(), f.TCP()
}

// emfileListener fails its first fails Accepts as accept(2) does when the
// process has no file descriptor left.
type emfileListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestTCPAcceptSurvivesEMFILE: Accept errors (the process out of file
// descriptors) are logged and retried with a backoff; the listener then
// accepts again. Before, the accept loop ended on the first error and the
// listener accepted nothing until Close, silently.
func TestTCPAcceptSurvivesEMFILE(t *testing.T) {
	var logs syncBuffer
	lt, ft := tcpTransports(t, QUICOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, QUICOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	fl := &emfileListener{Listener: ln}
	fl.fails.Store(4) // 5+10+20+40 ms of backoff
	l := lt.serve(fl)
	defer l.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := ft.Dial(ctx, l.Addr())
	require.NoError(t, err)
	defer s.Close()
	peer, err := l.Accept(ctx)
	require.NoError(t, err, "the listener accepts again after EMFILE")
	defer peer.Close()
	require.Equal(t, "follower", peer.Peer())
	require.Contains(t, logs.String(), "too many open files")
	require.Contains(t, logs.String(), "accept failed; retrying")
}

// TestTCPHandshakeLimit: connections that never start their TLS handshake
// hold at most maxHandshakes slots; each one beyond is closed at once
// instead of holding a goroutine and a file descriptor for
// HandshakeTimeout. Once the silent ones leave, a real dialer gets in.
func TestTCPHandshakeLimit(t *testing.T) {
	var logs syncBuffer
	lt, ft := tcpTransports(t, QUICOptions{HandshakeTimeout: time.Minute, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, QUICOptions{})
	l, err := lt.Listen("127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()

	const silent, extra = maxHandshakes, 8
	var closed atomic.Int32
	var conns []net.Conn
	var wg sync.WaitGroup
	defer wg.Wait() // after the closes below (defers run last first)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range silent + extra {
		c, err := net.Dial("tcp", l.Addr())
		require.NoError(t, err)
		conns = append(conns, c)
		wg.Go(func() {
			// A silent dialer's Read ends when the listener closes it, or
			// when the test closes it at the end.
			if _, err := c.Read(make([]byte, 1)); err == io.EOF || errors.Is(err, syscall.ECONNRESET) {
				closed.Add(1)
			}
		})
	}
	require.Eventually(t, func() bool { return closed.Load() >= extra }, 10*time.Second, 5*time.Millisecond,
		"connections beyond %d handshakes in flight are closed at once", maxHandshakes)
	require.EqualValues(t, extra, closed.Load(), "the first %d keep their slots until HandshakeTimeout", maxHandshakes)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "too many TLS handshakes") }, 10*time.Second, 5*time.Millisecond)

	for _, c := range conns {
		require.NoError(t, c.Close())
	}
	conns = nil
	// The slots free as the listener sees each silent dialer leave.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.Eventually(t, func() bool {
		s, err := ft.Dial(ctx, l.Addr())
		if err != nil {
			return false
		}
		defer s.Close()
		if _, err := s.Write([]byte("x")); err != nil {
			return false
		}
		peer, err := l.Accept(ctx)
		if err != nil {
			return false
		}
		return peer.Close() == nil
	}, 10*time.Second, 20*time.Millisecond, "a real dialer is served once the silent ones left")
}
