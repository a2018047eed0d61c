package enginetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// testPrefetch checks an engine that implements logkv.Prefetcher: Prefetch
// of any keys (present, absent, deleted, empty-valued, large, the empty and
// an oversized key, repeated, nil and empty lists, more than a batch) does
// not panic, changes nothing Get, AppendGet, an iterator or LastSeq reads,
// does not count as a Get in Metrics, keeps none of the caller's key bytes,
// and after Close does not panic. An engine without it skips.
func testPrefetch(t *testing.T, open OpenFunc, caps Capabilities) {
	h := newHarness(t, open, caps)
	p, ok := h.e.(logkv.Prefetcher)
	if !ok {
		t.Skip("engine does not implement logkv.Prefetcher")
	}
	e := h.e
	big := strings.Repeat("0123456789abcdef", 4096)
	want := map[string]string{"k": "v2", "empty": "", "big": big, "k\x00": "nul"}
	set(t, e, "k", "v1")
	set(t, e, "k", "v2")
	set(t, e, "gone", "x")
	del(t, e, "gone")
	set(t, e, "empty", "")
	set(t, e, "big", big)
	set(t, e, "k\x00", "nul")
	for i := range 40 {
		k := fmt.Sprintf("key:%012d", i)
		set(t, e, k, k)
		want[k] = k
	}
	require.NoError(t, e.Sync())
	var keys [][]byte
	for _, k := range []string{"k", "gone", "empty", "big", "k\x00", "absent", "", "\x00", "\xff", "k", "k"} {
		keys = append(keys, []byte(k))
	}
	keys = append(keys, make([]byte, logkv.MaxKeySize+1)) // invalid for a write; a hint ignores it
	for i := range 40 {
		keys = append(keys, fmt.Appendf(nil, "key:%012d", 39-i))
	}
	seq := e.LastSeq()
	m0 := e.Metrics()
	p.Prefetch(nil)
	p.Prefetch([][]byte{})
	for i := range keys {
		p.Prefetch(keys[:i+1])
		p.Prefetch(keys[i:])
	}
	require.Equal(t, m0.Gets, e.Metrics().Gets, "Prefetch counted as Gets")
	require.Equal(t, seq, e.LastSeq(), "Prefetch moved LastSeq")
	// Prefetch keeps no key: a goroutine overwrites the bytes of the keys
	// given so far while Gets, a Prefetch of copies and Gets run. An
	// engine that kept a reference and read it after returning (in a later
	// call, or in a goroutine of its own) reads bytes the overwrite wrote
	// with nothing ordering the two, which -race reports; afterwards a
	// Prefetch of the overwritten keys changes nothing.
	copies := make([][]byte, len(keys))
	for i, k := range keys {
		copies[i] = bytes.Clone(k)
	}
	overwritten := make(chan struct{})
	go func() {
		defer close(overwritten)
		xs := bytes.Repeat([]byte{'X'}, logkv.MaxKeySize+1)
		for _, k := range keys {
			// One copy a key: the race detector checks a range write
			// against every earlier read of its words, where byte stores
			// one at a time can miss a read that its shadow forgot.
			copy(k, xs)
		}
	}()
	for k, v := range want { // an engine may read its hint's keys in a Get
		requireGet(t, e, k, v, "while the keys of an earlier Prefetch are overwritten")
	}
	p.Prefetch(copies) // or in its next Prefetch
	for k, v := range want {
		requireGet(t, e, k, v, "while the keys of an earlier Prefetch are overwritten")
	}
	<-overwritten
	p.Prefetch(keys)
	for k, v := range want {
		requireGet(t, e, k, v, "after Prefetch")
		got, err := logkv.AppendGet(e, []byte("dst:"), []byte(k))
		require.NoError(t, err)
		require.Equal(t, "dst:"+v, string(got), "AppendGet(%q) after Prefetch", k)
	}
	for _, k := range []string{"gone", "absent", "X"} {
		_, err := e.Get([]byte(k))
		require.ErrorIs(t, err, logkv.ErrNotFound, "Get(%q) after Prefetch", k)
	}
	it, err := e.NewIter(nil)
	require.NoError(t, err)
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		v, ok := want[string(it.Key())]
		require.True(t, ok, "iterator found %q after Prefetch", it.Key())
		require.Equal(t, v, string(it.Value()))
		n++
	}
	require.NoError(t, it.Close())
	require.Equal(t, len(want), n, "keys an iterator finds after Prefetch")

	require.NoError(t, e.Close())
	p.Prefetch(keys)
	p.Prefetch(keys[:3])
}

// PrefetchStress runs Prefetch on e (a logkv.Prefetcher), each call
// followed by the Gets it hints at, from two goroutines against a writer
// (overwrites and deletes of 2,000 keys) and churn, which its own goroutine
// calls over and over (an engine's merges, snapshots: whatever moves or
// frees what Prefetch reads; it reports whether it did any), for run and
// until churn has done something (a merge needs dead records first), at
// most a minute more; then against e's Close, which it makes. Every Get must read a value its key held (values are the key,
// "=", a version), and before the Close every key what the writer last
// wrote, also after a Prefetch of them all; after it Prefetch must not
// panic. Run it with -race.
func PrefetchStress(t *testing.T, e logkv.Engine, run time.Duration, churn func() (bool, error)) {
	p := e.(logkv.Prefetcher)
	const n = 2000
	key := func(i int) []byte { return fmt.Appendf(nil, "key:%06d", i) }
	last := make([]string, n) // the writer's: each key's value, "" when absent
	for i := range n {
		last[i] = fmt.Sprintf("%s=0", key(i))
		require.NoError(t, e.Set(key(i), []byte(last[i]), nil))
	}
	deadline, limit := time.Now().Add(run), time.Now().Add(run+time.Minute)
	var churned, stop atomic.Bool
	going := func() bool {
		now := time.Now()
		return now.Before(deadline) || !churned.Load() && now.Before(limit)
	}
	var wg, readers sync.WaitGroup
	errs := make(chan error, 4)
	wg.Go(func() {
		r := rand.New(rand.NewPCG(1, 2))
		for v := 1; going(); v++ {
			i := r.IntN(n)
			var err error
			if r.IntN(8) == 0 {
				err, last[i] = e.Delete(key(i), nil), ""
			} else {
				last[i] = fmt.Sprintf("%s=%d", key(i), v)
				err = e.Set(key(i), []byte(last[i]), nil)
			}
			if err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		for going() {
			did, err := churn()
			if err != nil {
				errs <- err
				return
			}
			if did {
				churned.Store(true)
			}
		}
	})
	for g := range 2 {
		readers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 3))
			keys := make([][]byte, 1+r.IntN(20))
			for !stop.Load() {
				for j := range keys {
					keys[j] = key(r.IntN(n + n/8)) // an eighth never written
				}
				p.Prefetch(keys)
				for _, k := range keys {
					v, err := e.Get(k)
					switch {
					case errors.Is(err, logkv.ErrNotFound), errors.Is(err, logkv.ErrClosed):
					case err != nil:
						errs <- err
						return
					case !strings.HasPrefix(string(v), string(k)+"="):
						errs <- fmt.Errorf("Get(%s) = %q", k, v)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	noError := func() {
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
	}
	noError()
	require.True(t, churned.Load(), "churn did nothing in %v", run+time.Minute)
	all := make([][]byte, n+1)
	for i := range all {
		all[i] = key(i)
	}
	p.Prefetch(all)
	for i := range n {
		v, err := e.Get(key(i))
		if last[i] == "" {
			require.ErrorIs(t, err, logkv.ErrNotFound, "Get(%s)", key(i))
			continue
		}
		require.NoError(t, err, "Get(%s)", key(i))
		require.Equal(t, last[i], string(v), "Get(%s)", key(i))
	}
	require.NoError(t, e.Close()) // while the readers prefetch
	stop.Store(true)
	readers.Wait()
	noError()
	p.Prefetch(all)
}

// PrefetchGets is the body of an engine's Prefetch benchmark: b.N random
// hits among keys 0..n-1 (named by key, which appends key i to buf), in
// groups of 16 as kvnode answers a pipeline of 16 GETs, each group read by
// 16 AppendGets one after another, preceded, with prefetch, by a Prefetch of
// its 16 keys. The keys are drawn before the timer starts, into one array
// with a slot of 32 bytes a key: every key must have key(0)'s length, at
// most 32 bytes (it fails the benchmark otherwise). An op is one Get: the
// run makes count = b.N rounded up to a multiple of 16 Gets (whole groups),
// and cpu-ns/op is what threadCPU, the calling thread's CPU time in
// nanoseconds, grew by over the run divided by count, the Gets made, not by
// b.N (the goroutine is locked to its thread).
func PrefetchGets(b *testing.B, e logkv.Engine, n int, key func(i int, buf []byte) []byte, prefetch bool, threadCPU func() int64) {
	const group, stride = 16, 32
	r := rand.New(rand.NewPCG(5, 6))
	count := (b.N + group - 1) / group * group
	flat := make([]byte, count*stride)
	kl := len(key(0, nil))
	for i := range count {
		k := r.IntN(n)
		if got := key(k, flat[i*stride:i*stride]); len(got) != kl || kl > stride {
			b.Fatalf("PrefetchGets: key %d is %d bytes, key 0 %d: keys must all be as long as key 0, at most %d bytes", k, len(got), kl, stride)
		}
	}
	keys := make([][]byte, group)
	var dst []byte
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	cpu := threadCPU()
	for i := 0; i < count; i += group {
		for j := range keys {
			keys[j] = flat[(i+j)*stride : (i+j)*stride+kl]
		}
		if prefetch {
			logkv.Prefetch(e, keys)
		}
		for _, k := range keys {
			var err error
			if dst, err = logkv.AppendGet(e, dst[:0], k); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(threadCPU()-cpu)/float64(count), "cpu-ns/op")
}
