package transport

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkQUICStream streams 1 MiB writes one way over one QUIC stream on
// loopback, as a slot move or a follower's catch-up does, with a reader
// that discards: the transport's own ceiling, with mutual TLS.
//
//	go test -run X -bench QUICStream -benchtime 200x ./replicate/transport/
func BenchmarkQUICStream(b *testing.B) {
	ca, err := NewCA("bench CA")
	require.NoError(b, err)
	server, err := ca.Identity("server", "127.0.0.1")
	require.NoError(b, err)
	client, err := ca.Identity("client", "127.0.0.1")
	require.NoError(b, err)
	st, err := NewQUIC(QUICOptions{Identity: server})
	require.NoError(b, err)
	l, err := st.Listen("127.0.0.1:0")
	require.NoError(b, err)
	defer l.Close()
	ct, err := NewQUIC(QUICOptions{Identity: client})
	require.NoError(b, err)

	const chunk = 1 << 20
	got := make(chan int64, 1)
	go func() {
		s, err := l.Accept(context.Background())
		if err != nil {
			got <- -1
			return
		}
		defer s.Close()
		n, _ := io.CopyBuffer(io.Discard, s, make([]byte, 256<<10))
		got <- n
	}()
	s, err := ct.Dial(context.Background(), l.Addr())
	require.NoError(b, err)
	data := make([]byte, chunk)
	for i := range data {
		data[i] = byte(i * 7)
	}
	b.SetBytes(chunk)
	b.ResetTimer()
	for range b.N {
		if _, err := s.Write(data); err != nil {
			b.Fatal(err)
		}
	}
	// The end of the data: the reader's Copy returns once it has it all.
	require.NoError(b, s.(*quicStream).st.Close())
	n := <-got
	b.StopTimer()
	require.Equal(b, int64(b.N)*chunk, n)
	s.Close()
}
