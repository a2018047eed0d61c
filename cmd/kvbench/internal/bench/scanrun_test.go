package bench

import (
	"fmt"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// The noop iterator's ScanRun agrees with the loop through logkv.Iterator
// it replaces, step by step, both ways: with its key table and without it
// (YCSB's key space), with no bounds, with bounds that are keys (the fast
// path's) and with bounds that are not (a longer key, a key between keys).
func TestNoopScanRun(t *testing.T) {
	defer func(m uint64) { noopTableMax = m }(noopTableMax)
	key := func(n uint64) []byte { return appendKey(nil, n, 8) }
	bounds := map[string]*logkv.IterOptions{
		"none":     nil,
		"keys":     {LowerBound: key(10), UpperBound: key(290)},
		"not keys": {LowerBound: append(key(10), '5'), UpperBound: []byte("0000028")},
	}
	for _, table := range []bool{true, false} {
		for name, o := range bounds {
			t.Run(fmt.Sprintf("table=%t/bounds=%s", table, name), func(t *testing.T) {
				noopTableMax = 64 << 20
				if !table {
					noopTableMax = 0
				}
				s := &noopStore{}
				s.useValues(newValueSource(100, 1, 1))
				s.hold(300, 8)
				require.Equal(t, table, s.table != nil)
				require.NoError(t, CheckScanRunner(s, o))
			})
		}
	}
}

// CheckScanRunner finds a ScanRunner that is wrong in any of its results
// or leaves its iterator where the loop would not: without this, the test
// above could pass on a checker that checks nothing.
func TestCheckScanRunnerCatches(t *testing.T) {
	for _, bug := range []string{"count", "bytes", "end", "position"} {
		t.Run(bug, func(t *testing.T) {
			s := &noopStore{}
			s.useValues(newValueSource(100, 1, 1))
			s.hold(300, 8)
			err := CheckScanRunner(buggyRunnerStore{s, bug}, nil)
			require.Error(t, err)
			t.Log(err)
		})
	}
	s := &noopStore{}
	s.useValues(newValueSource(100, 1, 1))
	s.hold(300, 8)
	require.NoError(t, CheckScanRunner(buggyRunnerStore{s, ""}, nil), "the same store without the bug")
}

type buggyRunnerStore struct {
	*noopStore
	bug string
}

func (s buggyRunnerStore) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	it, err := s.noopStore.NewIter(o)
	return &buggyRunner{it.(*noopIter), s.bug}, err
}

// buggyRunner is the noop iterator with ScanRun wrong in one way, after
// 100 steps.
type buggyRunner struct {
	*noopIter
	bug string
}

func (it *buggyRunner) ScanRun(n int, reverse bool) (done int, bytes int64, ok bool) {
	at := it.pos
	done, bytes, ok = it.noopIter.ScanRun(n, reverse)
	if !ok || (at < 100 && it.pos < 100) || (at > 200 && it.pos > 200) {
		return done, bytes, ok
	}
	switch it.bug {
	case "count":
		done++
	case "bytes":
		bytes--
	case "end":
		ok = false
	case "position":
		it.Next()
	}
	return done, bytes, ok
}
