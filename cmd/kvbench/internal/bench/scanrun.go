package bench

import (
	"bytes"
	"fmt"

	"github.com/logkv/logkv"
)

// ScanRunner is the optional capability of an iterator that runs a scan's
// untimed steps itself, in a loop over its own concrete type. Without it a
// step is three dynamic calls (Key, Value, Next or Prev through
// logkv.Iterator), about 3.4 ns on the development machine: more than 5%
// of the fastest engine's whole step, and kvbench's cost, not the engine's,
// since a user of Pebble or bbolt calls their iterators' methods directly.
// The timed step between two stretches, and the pass that verifies what a
// scan read, still go through logkv.Iterator.
//
// ScanRun does what this loop does, with the same result:
//
//	for ; done < n && ok; done++ {
//		bytes += int64(len(it.Key()) + len(it.Value()))
//		ok = it.Next() // it.Prev() when reverse
//	}
//
// with ok true on entry: it reads the key's and value's lengths at the
// iterator's position and moves it, n times or until it is exhausted, and
// returns the steps made, the key and value bytes read, and whether it is
// still positioned (true when n is 0). It is called only on a positioned
// iterator, and leaves it where that loop would, ready for the next call
// of any of its methods. An iterator whose concrete type only an interface
// reaches (logkv's own engines return logkv.Iterator) does not implement
// it: for its users too a step is those dynamic calls. CheckScanRunner
// tests an implementation against the loop.
type ScanRunner interface {
	ScanRun(n int, reverse bool) (done int, bytes int64, ok bool)
}

// runSteps is the untimed stretch of a scan: it.ScanRun when run is it as a
// ScanRunner, else scanRun's loop through logkv.Iterator.
func runSteps(it logkv.Iterator, run ScanRunner, n int, reverse bool) (done int, bytes int64, ok bool) {
	if run != nil {
		return run.ScanRun(n, reverse)
	}
	return scanRun(it, n, reverse)
}

// CheckScanRunner checks s's iterators' ScanRun against the loop it
// replaces (see ScanRunner), within the bounds o sets (nil: none), both
// ways: two iterators over the same data, one moved by ScanRun and one by
// that loop through logkv.Iterator, in stretches of 0, 1, 2, 3, 5 and 64
// steps, each followed by a step through the interface (as a scan's timed
// step), must agree on every result and on the key and value they stop
// at, up to the end. It returns an error saying where they differ, or if
// s's iterators are not ScanRunners. s must hold at least one key within
// the bounds and not change while it runs.
func CheckScanRunner(s Store, o *logkv.IterOptions) error {
	for _, reverse := range []bool{false, true} {
		if err := checkScanRunner(s, o, reverse); err != nil {
			return fmt.Errorf("reverse=%t: %w", reverse, err)
		}
	}
	return nil
}

func checkScanRunner(s Store, o *logkv.IterOptions, reverse bool) (err error) {
	var its [2]logkv.Iterator
	for i := range its {
		if its[i], err = s.NewIter(o); err != nil {
			return err
		}
		defer func() {
			if cerr := its[i].Close(); err == nil {
				err = cerr
			}
		}()
	}
	got, want := its[0], its[1]
	run, isRunner := got.(ScanRunner)
	if !isRunner {
		return fmt.Errorf("%T does not implement ScanRunner", got)
	}
	okG, okW := position(got, reverse), position(want, reverse)
	if !okG || !okW {
		return fmt.Errorf("positioned: ScanRunner's iterator %t, the other %t; want both (is the store empty?)", okG, okW)
	}
	stretches := []int{0, 1, 2, 3, 5, 64}
	for i, steps := 0, 0; ; i++ {
		n := stretches[i%len(stretches)]
		dG, bG, okG := run.ScanRun(n, reverse)
		dW, bW, okW := scanRun(want, n, reverse)
		if dG != dW || bG != bW || okG != okW {
			return fmt.Errorf("ScanRun(%d) after %d steps = (%d, %d, %t), the loop's (%d, %d, %t)", n, steps, dG, bG, okG, dW, bW, okW)
		}
		steps += dG
		if !okG {
			if got.Valid() {
				return fmt.Errorf("ScanRun ended after %d steps and left its iterator valid", steps)
			}
			if err := got.Error(); err != nil {
				return err
			}
			return want.Error()
		}
		if !got.Valid() || !bytes.Equal(got.Key(), want.Key()) || !bytes.Equal(got.Value(), want.Value()) {
			return fmt.Errorf("after %d steps ScanRun's iterator is at %q (valid %t), the loop's at %q", steps, got.Key(), got.Valid(), want.Key())
		}
		// The timed step, through the interface.
		if okG, okW = step(got, reverse), step(want, reverse); okG != okW {
			return fmt.Errorf("the step after %d steps: %t, the loop's %t", steps, okG, okW)
		}
		steps++
		if !okG {
			return nil
		}
		if !bytes.Equal(got.Key(), want.Key()) {
			return fmt.Errorf("the step after ScanRun's %d steps landed on %q, the loop's on %q", steps, got.Key(), want.Key())
		}
	}
}
