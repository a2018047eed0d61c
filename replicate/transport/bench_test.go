package transport

import (
	"context"
	"io"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkQUICStream streams 1 MiB writes one way over one QUIC stream on
// loopback, as a slot move or a follower's catch-up does, with a reader
// that discards: the transport's own ceiling, with mutual TLS.
//
//	go test -run X -bench Stream -benchtime 200x ./replicate/transport/
func BenchmarkQUICStream(b *testing.B) {
	benchmarkStream(b, func(q *QUIC) Transport { return q })
}

// BenchmarkTCPStream is BenchmarkQUICStream over the TCP transport (TLS
// 1.3, mutual), which slot moves use. Both report the CPU both ends used
// per MB (cpu-ms/MB, getrusage of the process): on a shared machine it is
// steadier than MB/s.
func BenchmarkTCPStream(b *testing.B) {
	benchmarkStream(b, func(q *QUIC) Transport { return q.TCP() })
}

func benchmarkStream(b *testing.B, over func(*QUIC) Transport) {
	ca, err := NewCA("bench CA")
	require.NoError(b, err)
	server, err := ca.Identity("server", "127.0.0.1")
	require.NoError(b, err)
	client, err := ca.Identity("client", "127.0.0.1")
	require.NoError(b, err)
	st, err := NewQUIC(QUICOptions{Identity: server})
	require.NoError(b, err)
	l, err := over(st).Listen("127.0.0.1:0")
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
	s, err := over(ct).Dial(context.Background(), l.Addr())
	require.NoError(b, err)
	data := make([]byte, chunk)
	for i := range data {
		data[i] = byte(i * 7)
	}
	b.SetBytes(chunk)
	b.ResetTimer()
	cpu0 := processCPU()
	for range b.N {
		if _, err := s.Write(data); err != nil {
			b.Fatal(err)
		}
	}
	// The end of the data: the reader's Copy returns once it has it all.
	switch s := s.(type) {
	case *quicStream:
		require.NoError(b, s.st.Close())
	case *tcpStream:
		require.NoError(b, s.c.CloseWrite())
	}
	n := <-got
	b.StopTimer()
	b.ReportMetric(float64(processCPU()-cpu0)/1e6/(float64(b.N)*chunk/(1<<20)), "cpu-ms/MB")
	require.Equal(b, int64(b.N)*chunk, n)
	s.Close()
}

// processCPU is the process's user and system CPU time in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
