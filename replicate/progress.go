package replicate

import (
	"sort"
	"sync"
	"time"
)

// progress remembers, for recent groups of writes (one sample per group the
// leader applies), how many log bytes had been written through the group's
// last seq and when, so that a follower's lag can be told in bytes and
// seconds.
type progress struct {
	mu      sync.Mutex
	samples []sample // ring
	head    int      // index of the oldest
	cum     int64
}

type sample struct {
	seq uint64
	cum int64 // log bytes written through seq
	at  time.Time
}

const progressSamples = 1 << 14

func (p *progress) add(seq uint64, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cum += bytes
	s := sample{seq: seq, cum: p.cum, at: time.Now()}
	if len(p.samples) < progressSamples {
		p.samples = append(p.samples, s)
		return
	}
	p.samples[p.head] = s
	p.head = (p.head + 1) % progressSamples
}

// lag returns the log bytes written after seq and how long ago the first
// record after seq was written (within the remembered window), given that
// the leader's last record is last.
func (p *progress) lag(seq, last uint64) (int64, time.Duration) {
	if seq >= last {
		return 0, 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.samples)
	if n == 0 {
		return 0, 0
	}
	at := func(i int) sample { return p.samples[(p.head+i)%n] }
	// The first sample after seq.
	i := sort.Search(n, func(i int) bool { return at(i).seq > seq })
	if i == n {
		return 0, 0
	}
	s := at(i)
	var before int64
	if i > 0 {
		before = at(i - 1).cum
	} else {
		before = s.cum - (p.cum-s.cum)/max(int64(last-s.seq), 1) // the oldest: estimate
	}
	return p.cum - before, time.Since(s.at)
}
