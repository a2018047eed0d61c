package enginetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// failures collects errors from goroutines, which must not call t.FailNow.
type failures struct {
	mu   sync.Mutex
	errs []error
}

func (f *failures) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) < 10 {
		f.errs = append(f.errs, fmt.Errorf(format, args...))
	}
}

func (f *failures) failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.errs) > 0
}

func (f *failures) require(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NoError(t, errors.Join(f.errs...))
}

// concurrent-test key and value shapes: writer w owns keys "w<w>/<nn>" and
// writes values "w<w>:<counter>", its counter growing with every write.
func concKey(w, i int) string          { return fmt.Sprintf("w%d/%02d", w, i) }
func concValue(w int, n uint64) string { return fmt.Sprintf("w%d:%06d", w, n) }

// parseConc checks that value was written by the writer owning key, and
// returns its counter.
func parseConc(key, value string) (uint64, error) {
	owner, _, _ := strings.Cut(key, "/")
	if key == "shared" {
		owner, _, _ = strings.Cut(value, ":")
	}
	w, num, ok := strings.Cut(value, ":")
	n, err := strconv.ParseUint(num, 10, 64)
	if !ok || err != nil || w != owner || !strings.HasPrefix(w, "w") {
		return 0, fmt.Errorf("key %q holds %q, which its writer never wrote", key, value)
	}
	return n, nil
}

// readLoop calls read until it returns false, or until done is closed and it
// has been called at least once. It yields the processor between calls: on a
// machine with few cores, readers spinning against writers stretch a test
// out without testing more, as each write waits for a time slice.
func readLoop(done <-chan struct{}, read func() bool) {
	for n := 0; ; n++ {
		select {
		case <-done:
			if n > 0 {
				return
			}
		default:
		}
		if !read() {
			return
		}
		runtime.Gosched()
	}
}

func testConcurrent(t *testing.T, open OpenFunc, caps Capabilities) {
	h := newHarness(t, open, caps)
	e := h.e
	const writers, keysPerWriter = 4, 16
	ops := 300
	if testing.Short() {
		ops = 120
	}
	seed := rand.Uint64()
	t.Logf("concurrent: seed %d", seed)

	var f failures
	var writersWG, readersWG sync.WaitGroup
	done := make(chan struct{})
	models := make([]state, writers)
	commits := make([]uint64, writers)
	lastShared := make([]string, writers)

	for w := range writers {
		writersWG.Add(1)
		go func() {
			defer writersWG.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			model := state{}
			var counter uint64
			var bt logkv.Batch
			for range ops {
				if f.failed() {
					return
				}
				counter++
				o := wo(rng.IntN(20) == 0, 0)
				k := concKey(w, rng.IntN(keysPerWriter))
				v := concValue(w, counter)
				var err error
				switch r := rng.IntN(10); {
				case r < 5:
					err = e.Set([]byte(k), []byte(v), o)
					if err == nil {
						model[k] = v
					}
				case r < 7:
					err = e.Delete([]byte(k), o)
					if err == nil {
						delete(model, k)
					}
				case r < 9:
					bt.Reset()
					upd := state{}
					for range 1 + rng.IntN(4) {
						k := concKey(w, rng.IntN(keysPerWriter))
						if rng.IntN(4) == 0 {
							bt.Delete([]byte(k))
							upd[k] = "\x00deleted"
						} else {
							bt.Set([]byte(k), []byte(v))
							upd[k] = v
						}
					}
					bt.Set([]byte("shared"), []byte(v))
					upd["shared"] = v
					err = e.Apply(&bt, o)
					if err == nil {
						for k, v := range upd {
							if v == "\x00deleted" {
								delete(model, k)
							} else {
								model[k] = v
							}
						}
						lastShared[w] = v
					}
				default:
					if err := e.Sync(); err != nil {
						f.add("writer %d: Sync: %v", w, err)
						return
					}
					continue
				}
				if err != nil {
					f.add("writer %d: write %d: %v", w, counter, err)
					return
				}
				commits[w]++
			}
			delete(model, "shared")
			models[w] = model
		}()
	}

	// Readers: Gets must see values their key's writer wrote, and never go
	// back to an older one.
	for r := range 2 {
		readersWG.Add(1)
		go func() {
			defer readersWG.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(100+r)))
			seen := map[string]uint64{}
			var lastSeq uint64
			readLoop(done, func() bool {
				s := e.LastSeq()
				if s < lastSeq {
					f.add("LastSeq went back from %d to %d", lastSeq, s)
					return false
				}
				lastSeq = s
				k := concKey(rng.IntN(writers), rng.IntN(keysPerWriter))
				v, err := e.Get([]byte(k))
				if errors.Is(err, logkv.ErrNotFound) {
					return true
				}
				if err != nil {
					f.add("reader: Get(%q): %v", k, err)
					return false
				}
				c, err := parseConc(k, string(v))
				if err != nil {
					f.add("reader: %v", err)
					return false
				}
				if c < seen[k] {
					f.add("reader: Get(%q) returned counter %d after it had returned %d: a stale read", k, c, seen[k])
					return false
				}
				seen[k] = c
				return true
			})
		}()
	}

	// Iterators with random bounds and direction, over the engine or a
	// snapshot: keys in order, within bounds, values their writers wrote.
	for r := range 2 {
		readersWG.Add(1)
		go func() {
			defer readersWG.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(200+r)))
			var lastSnapSeq uint64
			readLoop(done, func() bool {
				var rd logkv.Reader = e
				var snap logkv.Snapshot
				if r == 1 {
					var err error
					if snap, err = e.NewSnapshot(); err != nil {
						f.add("NewSnapshot: %v", err)
						return false
					}
					if s := snap.Seq(); s < lastSnapSeq || s > e.LastSeq() {
						f.add("snapshot Seq %d: the previous snapshot had %d, LastSeq is now %d", s, lastSnapSeq, e.LastSeq())
					} else {
						lastSnapSeq = s
					}
					rd = snap
				}
				o := &logkv.IterOptions{}
				if rng.IntN(2) == 0 {
					o.LowerBound = []byte(concKey(rng.IntN(writers), rng.IntN(keysPerWriter)))
				}
				if rng.IntN(2) == 0 {
					o.UpperBound = []byte(concKey(rng.IntN(writers), rng.IntN(keysPerWriter)))
				}
				if err := checkConcScan(rd, o, rng.IntN(2) == 0); err != nil {
					f.add("%v", err)
				}
				if snap != nil {
					if err := snap.Close(); err != nil {
						f.add("snapshot Close: %v", err)
					}
				}
				return !f.failed()
			})
		}()
	}

	writersWG.Wait()
	close(done)
	readersWG.Wait()
	f.require(t)

	want := state{}
	var total uint64
	for w := range writers {
		total += commits[w]
		for k, v := range models[w] {
			want[k] = v
		}
	}
	require.Equal(t, total, e.LastSeq(), "LastSeq after %d concurrent commits", total)
	shared, err := e.Get([]byte("shared"))
	if err == nil {
		require.Contains(t, lastShared, string(shared), "the shared key holds the last value one of the writers gave it")
		want["shared"] = string(shared)
	}
	requireState(t, e, want, "after concurrent writers")
}

// checkConcScan scans r within o and checks the keys come in order, within
// bounds, holding values their writers wrote.
func checkConcScan(r logkv.Reader, o *logkv.IterOptions, backward bool) (err error) {
	it, err := r.NewIter(o)
	if err != nil {
		return fmt.Errorf("NewIter: %w", err)
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("iterator Close: %w", cerr)
		}
	}()
	var prevKey []byte
	move, start := it.Next, it.First
	if backward {
		move, start = it.Prev, it.Last
	}
	for ok := start(); ok; ok = move() {
		k := it.Key()
		if !o.Contains(k) {
			return fmt.Errorf("iterator %s returned %q, outside its bounds", boundsString(o), k)
		}
		if prevKey != nil && (!backward && string(k) <= string(prevKey) || backward && string(k) >= string(prevKey)) {
			return fmt.Errorf("iterator (backward %v) returned %q after %q", backward, k, prevKey)
		}
		if _, err := parseConc(string(k), string(it.Value())); err != nil {
			return fmt.Errorf("iterator: %w", err)
		}
		prevKey = append(prevKey[:0], k...)
	}
	return it.Close()
}
