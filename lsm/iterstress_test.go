package lsm

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// TestConcurrentItersShareNoState runs iterators, point reads and snapshots
// on one DB from several goroutines while writers fill small memtables, so
// that flushes and compactions replace tables under them: a scanner that
// opens and closes iterators (the node's countRange), a walker that keeps one
// iterator for a cycle of SeekGE and Next and resumes from its last key in a
// new one (the node's expirer), and AppendGet readers. Under -race it is the
// check that no two of them share a table iterator's state (the pooled
// iterState of sstable.Reader); without -race it checks what each reads:
// every key a scan shows is in order and within its bounds. LSM_ITERSTRESS
// sets its length (a duration, default 2s; 300ms with -short).
func TestConcurrentItersShareNoState(t *testing.T) {
	d := 2 * time.Second
	if testing.Short() {
		d = 300 * time.Millisecond
	}
	if s := os.Getenv("LSM_ITERSTRESS"); s != "" {
		var err error
		d, err = time.ParseDuration(s)
		require.NoError(t, err)
	}
	o := smallOptions(vfs.NewMem())
	o.MaxOpenFiles = 8 // table cache evictions too
	db, err := Open("db", o)
	require.NoError(t, err)
	defer db.Close()

	const nkeys = 4000
	key := func(i int) []byte { return fmt.Appendf(nil, "\x01key%06d", i) }
	for i := 0; i < nkeys; i += 2 {
		require.NoError(t, db.Set(key(i), []byte(strconv.Itoa(i)), nil))
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
		stop.Store(true)
	}
	var seed uint64
	run := func(f func(r *rand.Rand) error) {
		wg.Add(1)
		seed++
		seed := seed
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 7))
			for !stop.Load() {
				if err := f(r); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	// Writers: sets and deletes, flushing and compacting as they go.
	for w := 0; w < 2; w++ {
		run(func(r *rand.Rand) error {
			i := r.IntN(nkeys)
			if r.IntN(3) == 0 {
				return db.Delete(key(i), nil)
			}
			return db.Set(key(i), bytes.Repeat([]byte{'v'}, 20+r.IntN(60)), nil)
		})
	}
	// Scanners: bounded scans forward and back, opened and closed each time.
	scan := func(r *rand.Rand) error {
		lo := r.IntN(nkeys)
		hi := lo + 1 + r.IntN(400)
		it, err := db.NewIter(&logkv.IterOptions{LowerBound: key(lo), UpperBound: key(hi)})
		if err != nil {
			return err
		}
		var prev []byte
		n := 0
		for ok := it.First(); ok; ok = it.Next() {
			k := it.Key()
			if bytes.Compare(k, key(lo)) < 0 || bytes.Compare(k, key(hi)) >= 0 || (prev != nil && bytes.Compare(prev, k) >= 0) {
				_ = it.Close()
				return fmt.Errorf("scan [%d,%d): key %q after %q", lo, hi, k, prev)
			}
			prev = append(prev[:0], k...)
			if n++; n%50 == 0 && r.IntN(2) == 0 {
				it.Prev()
				it.Next()
			}
		}
		for ok := it.Last(); ok && n > 0; ok = it.Prev() {
			n--
		}
		if err := it.Error(); err != nil {
			_ = it.Close()
			return err
		}
		return it.Close()
	}
	run(scan)
	run(scan)
	// The walker: one iterator a cycle, a few dozen steps, then closed and
	// resumed with SeekGE from where it stopped in a new one.
	var resume []byte
	run(func(r *rand.Rand) error {
		it, err := db.NewIter(&logkv.IterOptions{LowerBound: []byte{1}, UpperBound: []byte{2}})
		if err != nil {
			return err
		}
		ok := it.SeekGE(resume)
		for n := 0; ok && n < 32; n++ {
			resume = append(resume[:0], it.Key()...)
			ok = it.Next()
		}
		if !ok {
			resume = resume[:0]
		}
		if err := it.Error(); err != nil {
			_ = it.Close()
			return err
		}
		return it.Close()
	})
	// Point reads into a buffer, and reads from snapshots.
	run(func(r *rand.Rand) error {
		buf := make([]byte, 0, 128)
		for j := 0; j < 64; j++ {
			if _, err := db.AppendGet(buf, key(r.IntN(nkeys))); err != nil && err != logkv.ErrNotFound {
				return err
			}
		}
		s, err := db.NewSnapshot()
		if err != nil {
			return err
		}
		it, err := s.NewIter(nil)
		if err != nil {
			_ = s.Close()
			return err
		}
		it.SeekGE(key(r.IntN(nkeys)))
		for n := 0; it.Valid() && n < 100; n++ {
			it.Next()
		}
		err = it.Close()
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		return err
	})
	time.Sleep(d) // the test's length, not synchronisation
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	m := db.Metrics()
	var flushes, compactions float64
	for _, x := range m.Detail {
		switch x.Name {
		case "lsm_flushes_total":
			flushes = x.Value
		case "lsm_compactions_total":
			compactions = x.Value
		}
	}
	t.Logf("after %v: %d Gets, %d writes, %.0f flushes, %.0f compactions", d, m.Gets, m.Writes, flushes, compactions)
}
