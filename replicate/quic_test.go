package replicate

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/logkv/logkv/replicate/transport"
	"github.com/stretchr/testify/require"
)

// raceEnabled is set by race_test.go under -race.
var raceEnabled bool

// quicCluster is a cluster whose nodes talk QUIC on loopback, each with a
// certificate from one CA.
func quicCluster(t *testing.T, mod func(*Config)) (*cluster, *transport.CA) {
	ca, err := transport.NewCA("test CA")
	require.NoError(t, err)
	c := newCluster(t, func(cfg *Config) {
		id, err := ca.Identity(cfg.ID, "127.0.0.1")
		require.NoError(t, err)
		tr, err := transport.NewQUIC(transport.QUICOptions{Identity: id, Logger: cfg.Logger, IdleTimeout: 10 * time.Second})
		require.NoError(t, err)
		cfg.Transport = tr
		cfg.ListenAddr = "127.0.0.1:0"
		if mod != nil {
			mod(cfg)
		}
	})
	return c, ca
}

func TestQUICCluster(t *testing.T) {
	writes := 100_000
	if testing.Short() || raceEnabled {
		// The race detector slows this run ten times over; 100k writes
		// run without it.
		writes = 20_000
	}
	c, _ := quicCluster(t, func(cfg *Config) { cfg.SegmentSize = 1 << 20; cfg.Compress = true })
	a := c.start("a", "")
	b := c.start("b", "a")
	cn := c.start("c", "a")
	write(t, a, 0, writes, 8)
	requireConverged(t, a, b, cn)
	leaderHearsAll(t, a)
	for _, s := range a.Followers() {
		require.Equal(t, StateStreaming, s.State)
		require.Zero(t, s.LagRecords)
	}

	// Stopped and restarted: catches up from its seq.
	require.NoError(t, c.nodes["b"].Checkpoint())
	c.stop("b")
	write(t, a, writes, 2000, 4)
	b = c.start("b", "a")
	requireConverged(t, a, b, cn)
	require.Zero(t, b.Status().Resyncs)

	// Wiped, with the leader's log trimmed: fully resynced.
	leaderHearsAll(t, a)
	require.NoError(t, a.Checkpoint())
	require.NoError(t, a.Maintain())
	require.Greater(t, a.Log().FirstSeq(), uint64(1))
	c.stop("c")
	c.wipe("c")
	cn = c.start("c", "a")
	write(t, a, writes+2000, 1000, 4)
	requireConverged(t, a, b, cn)
	require.Equal(t, uint64(1), cn.Status().Resyncs)
}

// lockedBuffer is a goroutine-safe log sink.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A follower whose certificate comes from another CA never gets in; the
// refusal is logged with its reason.
func TestQUICWrongCARefused(t *testing.T) {
	c, _ := quicCluster(t, nil)
	a := c.start("a", "")
	write(t, a, 0, 10, 1)

	other, err := transport.NewCA("other CA")
	require.NoError(t, err)
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	id, err := other.Identity("intruder", "127.0.0.1")
	require.NoError(t, err)
	tr, err := transport.NewQUIC(transport.QUICOptions{Identity: id, Logger: logger})
	require.NoError(t, err)
	// The dialer fails the handshake on the leader's certificate.
	_, err = tr.Dial(context.Background(), a.Addr())
	require.ErrorContains(t, err, "certificate signed by unknown authority")
	require.Contains(t, logs.String(), "replication connection refused")
	require.Contains(t, logs.String(), "unknown authority")
	require.Empty(t, a.Followers(), "no follower got through")
}
