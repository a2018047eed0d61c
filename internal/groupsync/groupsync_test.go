package groupsync

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeLog is a log whose appends count positions and whose fsync the test
// can hold and fail. Its watermark is an atomic, as a real caller's is.
type fakeLog struct {
	mu       sync.Mutex
	appended uint64
	durable  atomic.Uint64

	flushErr error // returned by the next flush, then cleared
	syncErr  error // returned by every sync while set

	gate    chan struct{} // if set, each sync sends on entered and waits on it
	entered chan uint64
	syncs   atomic.Int64 // syncs running now
	maxSync atomic.Int64 // most syncs ever running at once

	g *Group[uint64]
}

func newFakeLog() *fakeLog {
	l := &fakeLog{entered: make(chan uint64, 100)}
	l.g = New(l.durable.Load, l.flush, l.sync)
	return l
}

func (l *fakeLog) append() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.appended++
	return l.appended
}

func (l *fakeLog) flush(uint64) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.flushErr; err != nil {
		l.flushErr = nil
		return 0, err
	}
	return l.appended, nil
}

func (l *fakeLog) sync(target uint64) error {
	n := l.syncs.Add(1)
	defer l.syncs.Add(-1)
	for {
		m := l.maxSync.Load()
		if n <= m || l.maxSync.CompareAndSwap(m, n) {
			break
		}
	}
	if l.gate != nil {
		l.entered <- target
		select {
		case <-l.gate:
		case <-time.After(10 * time.Second):
			// A round the test did not expect: fail it rather than hang.
			return errUnexpectedRound
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.syncErr != nil {
		return l.syncErr
	}
	if target > l.durable.Load() {
		l.durable.Store(target)
	}
	return nil
}

var errUnexpectedRound = errors.New("a sync the test never released")

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Many writers append and sync at once: each returns only once its position
// is durable, syncs never overlap, and they share rounds.
func TestConcurrentWriters(t *testing.T) {
	l := newFakeLog()
	const writers, each = 16, 300
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				pos := l.append()
				if err := l.g.SyncTo(pos); err != nil {
					t.Error(err)
					return
				}
				if d := l.durable.Load(); d < pos {
					t.Errorf("SyncTo(%d) returned with %d durable", pos, d)
					return
				}
			}
		})
	}
	wg.Wait()
	require.Equal(t, int64(1), l.maxSync.Load(), "two rounds synced at once")
	require.Equal(t, uint64(writers*each), l.durable.Load())
	rounds, _ := l.g.Stats()
	require.LessOrEqual(t, rounds, uint64(writers*each))
	t.Logf("%d syncs for %d writes", rounds, writers*each)
}

// While one round's sync is held, every caller that arrives waits; when it
// ends, those it covered return at once, and all the others are covered by
// one more round, not one each.
func TestWaitersShareTheNextRound(t *testing.T) {
	l := newFakeLog()
	l.gate = make(chan struct{})
	var waiting atomic.Int64
	l.g.OnWait = func() { waiting.Add(1) }
	done := make(chan uint64, 20)
	syncTo := func(pos uint64) {
		go func() {
			require.NoError(t, l.g.SyncTo(pos))
			done <- pos
		}()
	}
	first := l.append()
	syncTo(first)
	require.Equal(t, first, <-l.entered) // round 1 covers only first
	covered := first
	syncTo(covered) // a second caller for the same position
	var later []uint64
	for range 8 {
		p := l.append()
		later = append(later, p)
		syncTo(p)
	}
	waitFor(t, "9 waiters", func() bool { return waiting.Load() == 9 })
	l.gate <- struct{}{} // round 1 ends
	require.Equal(t, later[len(later)-1], <-l.entered, "round 2 covers every later append")
	// Round 2 is held: the two callers round 1 covered have returned.
	got := []uint64{<-done, <-done}
	require.Equal(t, []uint64{first, first}, got)
	l.gate <- struct{}{}
	for range later {
		<-done
	}
	rounds, _ := l.g.Stats()
	require.Equal(t, uint64(2), rounds)
}

// A failed sync sticks: the leader, its waiters and every later caller get
// it, even once the log has more to sync; positions synced before the
// failure still return nil.
func TestSyncErrorSticks(t *testing.T) {
	l := newFakeLog()
	require.NoError(t, l.g.SyncTo(l.append()))
	before := l.durable.Load()

	l.gate = make(chan struct{})
	boom := errors.New("fsync: input/output error")
	leader := make(chan error, 1)
	p := l.append()
	go func() { leader <- l.g.SyncTo(p) }()
	<-l.entered
	var waiting atomic.Int64
	l.g.OnWait = func() { waiting.Add(1) }
	waiter := make(chan error, 1)
	q := l.append()
	go func() { waiter <- l.g.SyncTo(q) }()
	waitFor(t, "the waiter", func() bool { return waiting.Load() == 1 })
	l.mu.Lock()
	l.syncErr = boom
	l.mu.Unlock()
	l.gate <- struct{}{}
	require.ErrorIs(t, <-leader, boom)
	require.ErrorIs(t, <-waiter, boom, "the waiter must not lead a round after a failed sync")
	require.ErrorIs(t, l.g.Err(), boom)

	// The disk recovers; the Group does not trust it.
	l.gate = nil
	l.mu.Lock()
	l.syncErr = nil
	l.mu.Unlock()
	require.ErrorIs(t, l.g.SyncTo(l.append()), boom)
	rounds, _ := l.g.Stats()
	require.Equal(t, uint64(2), rounds, "no round after the failure")
	require.NoError(t, l.g.SyncTo(before), "durable before the failure, and still")
}

// A round whose flush fails (a write the caller undid) fails the leader's
// call only and syncs nothing; the next call flushes again and succeeds.
func TestFlushErrorIsNotSticky(t *testing.T) {
	l := newFakeLog()
	full := errors.New("write: no space left on device")
	l.flushErr = full
	p := l.append()
	require.ErrorIs(t, l.g.SyncTo(p), full)
	require.NoError(t, l.g.Err())
	require.Equal(t, uint64(0), l.durable.Load())
	require.NoError(t, l.g.SyncTo(p))
	require.Equal(t, p, l.durable.Load())
	rounds, _ := l.g.Stats()
	require.Equal(t, uint64(1), rounds)
}

// A sync that fails halfway through a group: the flush wrote every waiter's
// records and the fsync failed. None of them may return nil.
func TestSyncFailsHalfway(t *testing.T) {
	l := newFakeLog()
	l.gate = make(chan struct{})
	first := l.append()
	errs := make(chan error, 10)
	go func() { errs <- l.g.SyncTo(first) }()
	<-l.entered // round 1 in flight, it will succeed
	var waiting atomic.Int64
	l.g.OnWait = func() { waiting.Add(1) }
	for range 5 {
		p := l.append()
		go func() { errs <- l.g.SyncTo(p) }()
	}
	waitFor(t, "5 waiters", func() bool { return waiting.Load() == 5 })
	l.gate <- struct{}{}
	require.NoError(t, <-errs)
	<-l.entered // round 2 covers the 5; it fails
	boom := errors.New("fsync failed")
	l.mu.Lock()
	l.syncErr = boom
	l.mu.Unlock()
	l.gate <- struct{}{}
	for range 5 {
		require.ErrorIs(t, <-errs, boom)
	}
	require.Equal(t, first, l.durable.Load(), "the failed round advanced nothing")
}

// Fail makes a sync the caller ran outside a round sticky too.
func TestFail(t *testing.T) {
	l := newFakeLog()
	boom := errors.New("sealing sync failed")
	require.NoError(t, l.g.Fail(nil))
	require.ErrorIs(t, l.g.Fail(boom), boom)
	require.ErrorIs(t, l.g.Fail(errors.New("later")), boom, "the first failure stays")
	require.ErrorIs(t, l.g.SyncTo(l.append()), boom)
}

// Lock waits for the round in flight and holds off new ones until Unlock;
// a caller waiting meanwhile looks at the watermark again afterwards, which
// the caller may have moved back (a truncation).
func TestLockExcludesRounds(t *testing.T) {
	l := newFakeLog()
	l.gate = make(chan struct{})
	p := l.append()
	res := make(chan error, 2)
	go func() { res <- l.g.SyncTo(p) }()
	<-l.entered
	locked := make(chan struct{})
	go func() {
		l.g.Lock()
		close(locked)
	}()
	select {
	case <-locked:
		t.Fatal("Lock returned while a round was in flight")
	case <-time.After(20 * time.Millisecond):
	}
	l.gate <- struct{}{}
	require.NoError(t, <-res)
	<-locked

	// Locked: the caller truncates, moving the watermark back to 0.
	l.mu.Lock()
	l.appended = 0
	l.durable.Store(0)
	l.mu.Unlock()
	var waiting atomic.Int64
	l.g.OnWait = func() { waiting.Add(1) }
	q := l.append()
	go func() { res <- l.g.SyncTo(q) }()
	waitFor(t, "the caller to wait for Unlock", func() bool { return waiting.Load() == 1 })
	require.Equal(t, int64(0), l.syncs.Load())
	l.g.Unlock()
	require.Equal(t, q, <-l.entered, "the position after the truncation is synced again")
	l.gate <- struct{}{}
	require.NoError(t, <-res)
}

// A panic in the caller's flush does not wedge the Group.
func TestPanicInFlushReleases(t *testing.T) {
	calls := 0
	var durable atomic.Uint64
	g := New(durable.Load, func(uint64) (uint64, error) {
		calls++
		if calls == 1 {
			panic("flush bug")
		}
		return 1, nil
	}, func(r uint64) error { durable.Store(r); return nil })
	require.Panics(t, func() { _ = g.SyncTo(1) })
	require.NoError(t, g.SyncTo(1))
}

// A round that did not cover the leader's position (the log moved its
// watermark back while the round ran) does not let SyncTo return nil: it
// looks again and leads another round.
func TestSyncToLooksAgainAfterARound(t *testing.T) {
	var durable atomic.Uint64
	rounds := 0
	g := New(durable.Load, func(pos uint64) (uint64, error) {
		rounds++
		if rounds == 1 {
			return pos - 1, nil // the log was cut back under this round
		}
		return pos, nil
	}, func(r uint64) error { durable.Store(r); return nil })
	require.NoError(t, g.SyncTo(5))
	require.Equal(t, 2, rounds)
	require.Equal(t, uint64(5), durable.Load())
}
