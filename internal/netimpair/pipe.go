package netimpair

import (
	"container/heap"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// pipe impairs one direction of one flow. Its goroutine (run) owns the
// generator, the queue and the held datagram; other goroutines only push.
type pipe struct {
	p    *Proxy
	imp  *atomic.Pointer[Impairment]
	st   *counters
	in   chan []byte
	send func([]byte) error
	rng  *rand.Rand

	q         queue
	seq       uint64  // orders datagrams due at the same time
	held      *packet // held back for reordering
	heldUntil time.Time
}

type packet struct {
	due time.Time
	seq uint64
	b   []byte
}

func newPipe(p *Proxy, imp *atomic.Pointer[Impairment], st *counters, stream uint64, send func([]byte) error) *pipe {
	return &pipe{
		p: p, imp: imp, st: st, send: send,
		in:  make(chan []byte, p.o.QueueLen),
		rng: rand.New(rand.NewPCG(p.o.Seed, stream)),
	}
}

// push hands a datagram to the pipe without ever blocking the reader.
func (pp *pipe) push(b []byte) {
	pp.st.in.Add(1)
	select {
	case pp.in <- b:
	default:
		pp.st.overflow.Add(1)
	}
}

// run applies the impairment: one timer, set to the earliest due datagram
// or held-datagram deadline, so no datagram waits on another's delay.
func (pp *pipe) run() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-pp.p.done:
			return
		case b := <-pp.in:
			pp.arrive(b, time.Now())
		case <-timer.C:
		}
		now := time.Now()
		pp.flush(now)
		if next, ok := pp.next(); ok {
			timer.Reset(next.Sub(now))
		} else {
			timer.Stop()
		}
	}
}

func (pp *pipe) delay(im *Impairment, now time.Time) time.Time {
	d := im.Delay
	if im.Jitter > 0 {
		d += time.Duration(pp.rng.Int64N(2*int64(im.Jitter)+1)) - im.Jitter
	}
	return now.Add(max(d, 0))
}

func (pp *pipe) arrive(b []byte, now time.Time) {
	if pp.p.partitioned.Load() {
		pp.st.partitioned.Add(1)
		return
	}
	im := pp.imp.Load()
	if im.Loss > 0 && pp.rng.Float64() < im.Loss {
		pp.st.lost.Add(1)
		return
	}
	due := pp.delay(im, now)
	dup := im.Duplicate > 0 && pp.rng.Float64() < im.Duplicate
	if dup {
		pp.st.duplicated.Add(1)
		pp.enqueue(pp.delay(im, now), b)
	}
	if h := pp.held; h != nil {
		// This is the next datagram: it goes first, the held one right
		// after it.
		pp.held = nil
		pp.enqueue(due, b)
		pp.enqueue(maxTime(h.due, due), h.b)
		pp.st.reordered.Add(1)
		return
	}
	if im.Reorder > 0 && pp.rng.Float64() < im.Reorder {
		pp.held = &packet{due: due, b: b}
		pp.heldUntil = now.Add(pp.p.o.HoldMax)
		return
	}
	pp.enqueue(due, b)
}

func (pp *pipe) enqueue(due time.Time, b []byte) {
	pp.seq++
	heap.Push(&pp.q, packet{due: due, seq: pp.seq, b: b})
}

// flush releases a held datagram whose wait is over and sends what is due.
func (pp *pipe) flush(now time.Time) {
	if pp.held != nil && !now.Before(pp.heldUntil) {
		pp.enqueue(pp.held.due, pp.held.b)
		pp.held = nil
	}
	for len(pp.q) > 0 && !pp.q[0].due.After(now) {
		pk := heap.Pop(&pp.q).(packet)
		if pp.p.partitioned.Load() {
			pp.st.partitioned.Add(1)
			continue
		}
		// Counted first, so that whoever receives it sees it counted.
		pp.st.sent.Add(1)
		if err := pp.send(pk.b); err != nil {
			pp.st.sendErrors.Add(1)
		}
	}
}

// next is when run must wake up next, if anything waits.
func (pp *pipe) next() (time.Time, bool) {
	var t time.Time
	ok := false
	if len(pp.q) > 0 {
		t, ok = pp.q[0].due, true
	}
	if pp.held != nil && (!ok || pp.heldUntil.Before(t)) {
		t, ok = pp.heldUntil, true
	}
	return t, ok
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// queue is a min-heap of packets by due time, then arrival.
type queue []packet

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(packet)) }
func (q *queue) Pop() any {
	old := *q
	pk := old[len(old)-1]
	old[len(old)-1] = packet{}
	*q = old[:len(old)-1]
	return pk
}
