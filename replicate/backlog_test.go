package replicate

import (
	"fmt"
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
			a.wmu.Lock()
			backlog := a.unappliedBytes
			a.wmu.Unlock()
			require.Less(t, backlog, 2*applyBacklog, "the bytes held for the apply shrink with it")
		})
	}
}
