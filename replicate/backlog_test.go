package replicate

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// A writer that submits without awaiting (a bulk import) has its records
// applied once they pass applyBacklog, rather than held in memory until its
// Await: under either sync policy, and in Sync mode without the quorum.
func TestSubmittedBacklogIsApplied(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"fsync", func(*Config) {}},
		{"syncinterval", func(c *Config) { c.SyncInterval = time.Second }},
		{"quorum", func(c *Config) { c.AckMode, c.Quorum, c.QuorumTimeout = Sync, 1, time.Minute }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, tc.mod)
			a := c.start("a", "")
			value := make([]byte, 256<<10)
			var last uint64
			for i := range 2 * applyBacklog / len(value) {
				var b logkv.Batch
				b.Set(fmt.Appendf(nil, "k%03d", i), value)
				seq, err := a.Submit(&b)
				require.NoError(t, err)
				last = seq
			}
			// The last applyBacklog bytes may wait for an Await; the rest
			// may not.
			want := last - uint64(applyBacklog/len(value))
			deadline := time.Now().Add(10 * time.Second)
			for a.LastSeq() < want && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			applied := a.LastSeq()
			require.GreaterOrEqual(t, applied, want, "records past the backlog are applied without an Await")
			_, err := a.Engine().Get([]byte("k000"))
			require.NoError(t, err)
			require.Less(t, a.unappliedBytes.Load(), int64(2*applyBacklog), "the bytes held for the apply shrink with it")
		})
	}
}

// gatedEngine holds every Apply until gate closes, once on is set.
type gatedEngine struct {
	logkv.Engine
	on      *atomic.Bool
	entered chan struct{}
	gate    chan struct{}
}

func (e *gatedEngine) Apply(b *logkv.Batch, o *logkv.WriteOptions) error {
	if e.on.Load() {
		select {
		case e.entered <- struct{}{}:
		default:
		}
		<-e.gate
	}
	return e.Engine.Apply(b, o)
}

// Past maxBacklog bytes submitted and not applied, Submit waits for the
// engine: a writer faster than it does not hold ever more records in
// memory. It goes on once the engine applies them.
func TestSubmitWaitsForItsBacklog(t *testing.T) {
	var on atomic.Bool
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	c := newCluster(t, func(cfg *Config) {
		cfg.SyncInterval = time.Second
		cfg.OpenEngine = func(fresh bool) (logkv.Engine, error) {
			e, err := openMemory(fresh)
			return &gatedEngine{Engine: e, on: &on, entered: entered, gate: gate}, err
		}
	})
	a := c.start("a", "")
	on.Store(true)
	opened := false
	defer func() {
		if !opened {
			close(gate)
		}
	}()
	value := make([]byte, 1<<20)
	submit := func(i int) error {
		var b logkv.Batch
		b.Set(fmt.Appendf(nil, "k%03d", i), value)
		_, err := a.Submit(&b)
		return err
	}
	// maxBacklog/len(value) records hold a little more than maxBacklog
	// bytes (their keys and headers): the next Submit must wait.
	i := 0
	for ; i < maxBacklog/len(value); i++ {
		require.NoError(t, submit(i), "below maxBacklog, Submit does not wait")
	}
	<-entered // applyLoop is in the engine, holding the records it took
	done := make(chan error, 1)
	go func() { done <- submit(i) }()
	select {
	case err := <-done:
		t.Fatalf("Submit returned (%v) with more than %d bytes unapplied and the engine held up", err, maxBacklog)
	case <-time.After(200 * time.Millisecond): // it waits, as it should
	}
	on.Store(false)
	close(gate)
	opened = true
	require.NoError(t, <-done)
}

// applyThrough of a seq whose records a role change took away (applyLoop
// read it, then a Follow applied them and a resync moved applied) refuses
// instead of applying past the end of unapplied: it panicked, or applied
// zeroed records and failed the node.
func TestApplyThroughRecordsTakenAway(t *testing.T) {
	c := newCluster(t, func(*Config) {})
	a := c.start("a", "")
	var b logkv.Batch
	b.Set([]byte("k"), []byte("v"))
	seq, err := a.Submit(&b)
	require.NoError(t, err)
	require.NoError(t, a.Await(seq))
	require.ErrorIs(t, a.applyThrough(seq+3), ErrNotLeader)
	require.Nil(t, a.failed.Load(), "the node did not fail")
	b.Reset()
	b.Set([]byte("k2"), []byte("v2"))
	seq, err = a.Submit(&b)
	require.NoError(t, err)
	require.NoError(t, a.Await(seq), "writes go on")
}
