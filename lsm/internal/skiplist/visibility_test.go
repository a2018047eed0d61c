package skiplist

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/logkv/logkv/lsm/internal/base"
)

// A reader at sequence number seq never sees a version newer than seq, even
// while the writer links that version in front of the one it should see:
// findGE once returned a second load of next, which could be the new node.
func TestGetAtOlderSeqDuringAdd(t *testing.T) {
	s := New(64 << 20)
	var visible atomic.Uint64
	read := func() string {
		seq := visible.Load()
		for k := 0; k < 16; k++ {
			key := []byte(fmt.Sprintf("atom/%02d", k))
			v, _, ok := s.Get(key, seq)
			if seq == 0 {
				if ok {
					return fmt.Sprintf("seq 0 saw %s=%s", key, v)
				}
				continue
			}
			if !ok || string(v) != fmt.Sprint(seq) {
				return fmt.Sprintf("seq %d: %s = %q ok=%v", seq, key, v, ok)
			}
		}
		return ""
	}
	whileReading(t, 2, read, func() {
		for seq := uint64(1); seq <= 3000; seq++ {
			for j := 0; j < 16; j++ {
				k := (j + int(seq)) % 16
				ik := base.AppendInternalKey(nil, []byte(fmt.Sprintf("atom/%02d", k)), seq, base.KindSet)
				if err := s.Add(ik, []byte(fmt.Sprint(seq))); err != nil {
					t.Error(err)
					return
				}
			}
			visible.Store(seq)
		}
	})
}
