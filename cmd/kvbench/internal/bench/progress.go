package bench

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress prints a line on stderr every so often while a benchmark runs, so
// a long run shows it is alive. On a terminal the line is redrawn in place
// and erased when the benchmark ends, so it never mixes with the results;
// elsewhere (with -progress always) each report is a line of its own.
//
// It is a plain ticker over the workers' counters rather than
// schollz/progressbar: progressbar's Add takes a mutex on every call, which
// would put a shared lock on the hot path of every operation of every thread,
// and a bar needs a known total that duration-bound YCSB runs do not have.
// Here each worker bumps its own cache-line-padded atomic counter and only
// the ticker reads them all.
type progress struct {
	out      io.Writer
	enabled  bool
	terminal bool
	every    time.Duration
}

func newProgress(cfg *Config, stderr io.Writer) *progress {
	p := &progress{out: stderr, every: cfg.ProgressEvery}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.terminal = true
	}
	switch cfg.Progress {
	case ProgressAlways:
		p.enabled = true
	case ProgressAuto:
		p.enabled = p.terminal
	}
	return p
}

// start reports on counters until the returned stop is called. expected is
// the total number of operations, or 0 if the run is bounded by time d.
func (p *progress) start(label string, expected int64, d time.Duration, counters []paddedCounter) (stop func()) {
	if p == nil || !p.enabled {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	printed := false
	go func() {
		defer wg.Done()
		t := time.NewTicker(p.every)
		defer t.Stop()
		t0 := time.Now()
		last, lastT := int64(0), t0
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				var done int64
				for i := range counters {
					done += counters[i].n.Load()
				}
				rate := float64(done-last) / now.Sub(lastT).Seconds()
				last, lastT = done, now
				var line string
				switch {
				case expected > 0:
					line = fmt.Sprintf("kvbench: %s: %d/%d ops (%.0f%%), %.0f ops/s, %s", label, done, expected, 100*float64(done)/float64(expected), rate, now.Sub(t0).Round(time.Second))
				case d > 0:
					line = fmt.Sprintf("kvbench: %s: %d ops, %.0f ops/s, %s of %s", label, done, rate, now.Sub(t0).Round(time.Second), d)
				default:
					line = fmt.Sprintf("kvbench: %s: %d ops, %.0f ops/s, %s", label, done, rate, now.Sub(t0).Round(time.Second))
				}
				if p.terminal {
					fmt.Fprintf(p.out, "\r\033[K%s", line)
				} else {
					fmt.Fprintln(p.out, line)
				}
				printed = true
			}
		}
	}()
	return func() {
		close(quit)
		wg.Wait()
		if printed && p.terminal {
			fmt.Fprint(p.out, "\r\033[K")
		}
	}
}
