package transport

import (
	"context"
	"errors"
	"net"
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
