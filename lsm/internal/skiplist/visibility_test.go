package skiplist

import (
	"fmt"
	"sync"
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
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	wg.Add(2)
	for r := 0; r < 2; r++ {
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				seq := visible.Load()
				for k := 0; k < 16; k++ {
					key := []byte(fmt.Sprintf("atom/%02d", k))
					v, _, ok := s.Get(key, seq)
					if seq == 0 {
						if ok {
							select {
							case errs <- fmt.Sprintf("seq 0 saw %s=%s", key, v):
							default:
							}
							return
						}
						continue
					}
					if !ok || string(v) != fmt.Sprint(seq) {
						select {
						case errs <- fmt.Sprintf("seq %d: %s = %q ok=%v", seq, key, v, ok):
						default:
						}
						return
					}
				}
			}
		}()
	}
	for seq := uint64(1); seq <= 3000; seq++ {
		for j := 0; j < 16; j++ {
			k := (j + int(seq)) % 16
			ik := base.AppendInternalKey(nil, []byte(fmt.Sprintf("atom/%02d", k)), seq, base.KindSet)
			if err := s.Add(ik, []byte(fmt.Sprint(seq))); err != nil {
				t.Fatal(err)
			}
		}
		visible.Store(seq)
	}
	close(done)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
