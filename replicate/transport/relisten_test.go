package transport

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestQUICRelistenAfterClose: once Close returns, the listener's UDP port is
// free, even while a follower's connection to it is still open (issue #17).
// A node that loses leadership and wins it back listens on the same address
// again at once; with the socket quic-go made for itself (quic.ListenAddr),
// the port stayed bound until every connection had drained, and promotion
// failed with "address already in use".
func TestQUICRelistenAfterClose(t *testing.T) {
	ca, err := NewCA("test CA")
	require.NoError(t, err)
	leader, err := ca.Identity("leader", "127.0.0.1")
	require.NoError(t, err)
	follower, err := ca.Identity("follower", "127.0.0.1")
	require.NoError(t, err)
	st, err := NewQUIC(QUICOptions{Identity: leader})
	require.NoError(t, err)
	ct, err := NewQUIC(QUICOptions{Identity: follower})
	require.NoError(t, err)

	l, err := st.Listen("127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr()
	for round := range 3 {
		accepted := make(chan Stream, 1)
		go func() {
			if s, err := l.Accept(context.Background()); err == nil {
				accepted <- s
			}
		}()
		s, err := ct.Dial(context.Background(), addr)
		require.NoError(t, err, "round %d", round)
		_, err = s.Write([]byte("x")) // the leader accepts once data arrives
		require.NoError(t, err)
		in := <-accepted
		_, err = io.ReadFull(in, make([]byte, 1))
		require.NoError(t, err)

		// The follower's side stays open: its connection is alive when
		// the leader steps down.
		require.NoError(t, l.Close())
		l, err = st.Listen(addr)
		require.NoError(t, err, "round %d: listening again on the address just closed", round)
		s.Close()
	}
	require.NoError(t, l.Close())
}
