package node

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/logkv/logkv"
)

// Expiry. A key's deadline is stored with its value (keyspace.go) and
// indexed by time in the expiry range, so:
//
//   - No command ever sees a key past its deadline: tx.load hides it, on a
//     leader and on a follower alike, by the node's clock.
//   - Only a leader deletes: lazily when a writing command touches an
//     expired key, and actively in runExpirer's cycles, which walk the index
//     from the oldest deadline and so find exactly the keys due, within a
//     time budget per cycle (below). Its deletes are ordinary batches, so
//     followers get them through the commit log, as Redis replicas get
//     DELs; a follower hides keys past their deadline meanwhile but never
//     deletes on its own.
//   - Deadlines are data, so they survive restarts and full resyncs.

// Active expiry, modelled on Redis's active expire cycle (expire.c): a
// goroutine of its own (runExpirer) runs cycles; each cycle deletes due keys
// in batches of expireBatch until none is due or its time budget is spent.
//
//   - Budget: a cycle may run for expireCyclePerc percent of the time since
//     the previous cycle began, at most expireCycleMax: Redis's
//     ACTIVE_EXPIRE_CYCLE_SLOW_TIME_PERC (25) at its default hz of 10. At
//     the cost figures of docs/keyspace.md that is tens of thousands of
//     deletes a second, while the other 75% of a core stays the clients'.
//   - Cadence: while keys are due, cycles run every expireCycleEvery, so a
//     key is removed soon after its deadline and a cycle is a short burst
//     (Redis's fast cycles); with nothing due the expirer sleeps until the
//     next deadline, checking at least every expireIdleEvery for deadlines
//     written meanwhile.
//   - Locks: a batch holds the stripes of its own keys only, from the check
//     of each key's value to the submission of its deletes (a writer that
//     found the key expired must not see its new value deleted), so a
//     command waits for at most one small batch. Holding the stripes of a
//     1000-key batch, which were all 256 of them, stalled every event loop
//     whose GET found an expired key not yet removed (settleExpired takes
//     the key's stripe): that was most of the GET p99 during mass expiry
//     (docs/keyspace.md).
//   - The index walk starts at the expirer's floor, below which it removed
//     every entry, not at the start of the index: an lsm keeps the deleted
//     entries as tombstones until compaction, and walking them on every
//     batch made the walk quadratic in the expiry rate. A deadline written
//     below the floor later lowers nextDue below it, which moves the walk's
//     start back (expirer.start). For the same reason a cycle walks with
//     one iterator, and a walk the budget cut short resumes where it
//     stopped in the next cycle; a deadline written during a walk keeps the
//     floor at or below it (dueWritten), since the walk may not see it.
//   - Durability: none of its own. A batch's deletes are made readable
//     (Barrier) after the batch releases its keys' locks, and become
//     durable and reach followers with the records around them (the
//     background sync of appendfsync everysec, the next group fsync
//     otherwise). An expiry delete lost in a crash is harmless: its key's
//     deadline has passed, so every read hides it, and the expirer deletes
//     it again. A Sync at the end of each cycle (every 5 ms) bought nothing
//     but an fsync per cycle with durability none.
const (
	expireBatch      = 32
	expireCyclePerc  = 25
	expireCycleMax   = 25 * time.Millisecond
	expireCycleEvery = 5 * time.Millisecond
	expireIdleEvery  = 100 * time.Millisecond
	// bgInterval is the period of the background worker (flush.go), which
	// sweeps flushed generations.
	bgInterval = 100 * time.Millisecond
)

// expireStats are INFO stats' expiry counters (Redis's names).
type expireStats struct {
	expiredKeys atomic.Int64 // keys the active expirer deleted
	timeCapped  atomic.Int64 // cycles that ran out of budget with keys still due
	cycleMicros atomic.Int64 // wall time spent in cycles
	// cycleMaxMicros is the longest cycle's wall time, the longest the
	// expirer ran without sleeping on its timer. Not one hold of a CPU:
	// each batch yields in its Barrier, and on a loaded machine most of a
	// long cycle is waiting for a CPU (docs/keyspace.md).
	cycleMaxMicros atomic.Int64
	staleEntries   atomic.Int64 // index entries removed without a key (rewritten or flushed)
}

// expireInfo adds INFO stats' expiry fields.
func (n *Node) expireInfo(add func(string, any)) {
	st := &n.state().expire
	add("expired_keys", st.expiredKeys.Load())
	add("expired_stale_perc", "0.00") // Redis samples; this expirer walks the index, so none are sampled stale
	add("expired_time_cap_reached_count", st.timeCapped.Load())
	// Wall time in cycles, as Redis's (it times them with ustime): on a
	// loaded machine well above the expirer's CPU time, which a cycle
	// spends partly waiting for a CPU (docs/keyspace.md).
	add("expire_cycle_cpu_milliseconds", st.cycleMicros.Load()/1000)
	// Not Redis's: the longest cycle's wall time since the start, in
	// microseconds (cmd/kvbench/expiry-latency prints it).
	add("expire_cycle_max_us", st.cycleMaxMicros.Load())
	// Not Redis's: the reads that found a key expired and not yet removed
	// (settleExpired), and those of them that made the writes submitted
	// before readable first (a Barrier). Many settles mean the expirer is
	// behind.
	add("expired_reads_settled", n.ks.settles.Load())
	add("expired_reads_settled_barrier", n.ks.settlesBarrier.Load())
}

// expirer is the active expirer's state, owned by its goroutine (or by one
// expireDue call).
type expirer struct {
	// floor: every index entry with a deadline before it was removed by an
	// earlier walk, except entries written after that walk, which lowered
	// nextDue (lowerNextDue) when they were applied.
	floor int64
	due   []dueEntry
	keys  [][]byte
	arena []byte // the due entries' keys
	offs  []int  // where each due key starts in arena (dueEntries)
	kbuf  []byte
	vbuf  []byte // the value read to check a key's deadline (reused)
	// A batch's data keys (dataKeys): data[i] is due[i]'s, in darena
	// (dends: where each ends, -1 for none), and pf the few of them handed
	// to the engine's Prefetch.
	data   [][]byte
	darena []byte
	dends  []int
	pf     [][]byte
	b      logkv.Batch

	// A walk of the index (startWalk) takes its clock (now) and nextDue
	// (hint) when it begins, and gathers the earliest deadline not due
	// (next). A cycle walks with one iterator, positioned at the entry the
	// next batch starts with (valid: on an entry). A walk the budget cut
	// short goes on in the next cycle (walking) at the entry it stopped at
	// (resume), not from the floor: an lsm keeps the entries removed as
	// tombstones until compaction, so while the expirer was behind every
	// cycle, and before that every batch, sought through all those removed
	// since the floor, which was most of the expirer's time (64% of the
	// node's CPU in lsm's findNext) and why it fell behind.
	it      indexCursor
	list    listCursor // it, on an engine that lists keys (keyLister)
	valid   bool
	walking bool
	resume  []byte
	now     int64
	hint    int64
	next    int64
}

// runExpirer runs active expiry cycles until stop closes, and closes the
// returned channel when it has stopped.
func (n *Node) runExpirer(stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		var e expirer
		timer := time.NewTimer(expireIdleEvery)
		defer timer.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-timer.C:
			}
			now := time.Now()
			budget := min(now.Sub(last)*expireCyclePerc/100, expireCycleMax)
			last = now
			wait := expireIdleEvery
			switch {
			case n.closing.Load():
			case n.backend.IsFollower():
				// A follower never deletes; once promoted it reads the index
				// it was sent from the start.
				n.ks.nextDue.Store(0)
				e.floor, e.walking = 0, false
			default:
				_, capped, err := n.expireCycle(&e, budget)
				if err != nil {
					n.log.Warn("active expiry failed; retrying next cycle", "err", err)
					break
				}
				if capped {
					wait = expireCycleEvery
				} else if next := n.ks.nextDue.Load(); next != math.MaxInt64 {
					wait = min(max(time.Duration(next-n.nowMs())*time.Millisecond, expireCycleEvery), expireIdleEvery)
				}
			}
			timer.Reset(wait)
		}
	}()
	return done
}

// expireDue runs one expiry cycle without a time budget: it deletes every
// key due, and reports how many. Tests call it; the node runs runExpirer.
func (n *Node) expireDue() (int, error) {
	var e expirer
	deleted, _, err := n.expireCycle(&e, 0)
	return deleted, err
}

// expireCycle deletes due keys, a batch at a time, until none is due or
// budget (0: none) is spent; capped says it stopped with keys still due.
// The cycle walks the index with one cursor (indexCursor), and each batch
// makes its deletes readable once it has released its keys' locks
// (expireLocked); nothing waits for them to be durable.
func (n *Node) expireCycle(e *expirer, budget time.Duration) (deleted int, capped bool, err error) {
	if n.nowMs() < n.ks.nextDue.Load() {
		return 0, false, nil // nothing can be due yet
	}
	st := &n.state().expire
	start := time.Now()
	defer func() {
		us := time.Since(start).Microseconds()
		st.cycleMicros.Add(us)
		raiseTo(&st.cycleMaxMicros, us)
		st.expiredKeys.Add(int64(deleted))
	}()
	if err := n.startWalk(e); err != nil {
		return 0, false, err
	}
	defer func() {
		if e.walking && e.valid && err == nil {
			e.resume = bytes.Clone(e.it.Key()) // not in place: the iterator sought it
		} else {
			e.walking = false // done, or begin again from the floor
		}
		err = errors.Join(err, e.it.Close())
		e.it, e.valid = nil, false
	}()
	for {
		d, more, err := n.expireBatch(e)
		deleted += d
		if err != nil || !more {
			return deleted, false, err
		}
		if budget > 0 && time.Since(start) >= budget {
			st.timeCapped.Add(1)
			return deleted, true, nil
		}
	}
}

// deadline parses a SET/GETEX/EXPIRE time argument of unit ex, px, exat
// or pxat into an absolute Unix ms deadline, with Redis' replies for bad
// ones. EXPIRE and its kin accept deadlines in the past (the key goes at
// once); SET and GETEX refuse times that are not positive.
func (n *Node) deadline(arg []byte, unit, cmd string) (int64, string) {
	return deadlineFrom(n.nowMs(), arg, unit, cmd)
}

// cmdNow is the clock a command of c reads: inside EXEC the transaction's,
// which is fixed when EXEC starts, so that a relative deadline already past
// (EXPIRE k -1) is past for the transaction too and the key goes at once.
func (n *Node) cmdNow(c *client) int64 {
	if t := c.ks.exec; t != nil {
		return t.now
	}
	return n.nowMs()
}

// deadlineFrom is deadline with relative times counted from now.
func deadlineFrom(now int64, arg []byte, unit, cmd string) (int64, string) {
	v, err := strconv.ParseInt(string(arg), 10, 64)
	if err != nil {
		return 0, errNotInteger
	}
	invalid := fmt.Sprintf("ERR invalid expire time in '%s' command", cmd)
	strict := cmd == "set" || cmd == "getex" || cmd == "setex" || cmd == "psetex"
	if strict && v <= 0 {
		return 0, invalid
	}
	if unit == "ex" || unit == "exat" {
		if v > math.MaxInt64/1000 || v < math.MinInt64/1000 {
			return 0, invalid
		}
		v *= 1000
	}
	if unit == "ex" || unit == "px" {
		if v > math.MaxInt64-now {
			return 0, invalid
		}
		v += now
	}
	return v, ""
}

func init() {
	for _, c := range []*command{
		{name: "expire", arity: -3, write: true, run: cmdExpire, first: 1, last: 1, step: 1},
		{name: "pexpire", arity: -3, write: true, run: cmdExpire, first: 1, last: 1, step: 1},
		{name: "expireat", arity: -3, write: true, run: cmdExpire, first: 1, last: 1, step: 1},
		{name: "pexpireat", arity: -3, write: true, run: cmdExpire, first: 1, last: 1, step: 1},
		{name: "ttl", arity: 2, run: cmdTTL, first: 1, last: 1, step: 1},
		{name: "pttl", arity: 2, run: cmdTTL, first: 1, last: 1, step: 1},
		{name: "expiretime", arity: 2, run: cmdTTL, first: 1, last: 1, step: 1},
		{name: "pexpiretime", arity: 2, run: cmdTTL, first: 1, last: 1, step: 1},
		{name: "persist", arity: 2, write: true, run: cmdPersist, first: 1, last: 1, step: 1},
		{name: "setex", arity: 4, write: true, run: cmdSetEx, first: 1, last: 1, step: 1},
		{name: "psetex", arity: 4, write: true, run: cmdSetEx, first: 1, last: 1, step: 1},
		{name: "getex", arity: -2, write: true, run: cmdGetEx, first: 1, last: 1, step: 1},
	} {
		register(c)
	}
}

// cmdExpire: EXPIRE key seconds, PEXPIRE key ms, EXPIREAT key unix-s,
// PEXPIREAT key unix-ms, each with [NX | XX | GT | LT].
func cmdExpire(n *Node, c *client, args [][]byte) {
	name := strings.ToLower(string(args[0]))
	unit := map[string]string{"expire": "ex", "pexpire": "px", "expireat": "exat", "pexpireat": "pxat"}[name]
	var nx, xx, gt, lt bool
	for _, a := range args[3:] {
		switch strings.ToLower(string(a)) {
		case "nx":
			nx = true
		case "xx":
			xx = true
		case "gt":
			gt = true
		case "lt":
			lt = true
		default:
			c.fail(fmt.Sprintf("ERR Unsupported option %s", a))
			return
		}
	}
	if nx && (xx || gt || lt) {
		c.fail("ERR NX and XX, GT or LT options at the same time are not compatible")
		return
	}
	if gt && lt {
		c.fail("ERR GT and LT options at the same time are not compatible")
		return
	}
	at, msg := deadlineFrom(n.cmdNow(c), args[2], unit, name)
	if msg != "" {
		c.fail(msg)
		return
	}
	t, v, cur, found, ok := n.change(c, args[1:2])
	if !ok {
		return
	}
	defer t.close()
	if !found ||
		(nx && cur != 0) || (xx && cur == 0) ||
		(gt && (cur == 0 || at <= cur)) || (lt && cur != 0 && at >= cur) {
		c.conn.WriteInt(0)
		return
	}
	var err error
	if at <= t.now {
		_, err = t.del(args[1]) // a deadline already past: the key goes now
	} else {
		t.set(args[1], v, at)
	}
	if err != nil {
		n.replyErr(c, err)
		return
	}
	if t.commit() {
		c.conn.WriteInt(1)
	}
}

// cmdTTL: TTL, PTTL, EXPIRETIME, PEXPIRETIME: -2 for a missing key, -1 for
// one without a deadline.
func cmdTTL(n *Node, c *client, args [][]byte) {
	t := n.read(c)
	defer t.close()
	_, at, found, err := t.get(args[1])
	switch {
	case err != nil:
		n.replyErr(c, err)
		return
	case !found:
		c.conn.WriteInt(-2)
		return
	case at == 0:
		c.conn.WriteInt(-1)
		return
	}
	switch strings.ToLower(string(args[0])) {
	case "ttl":
		c.conn.WriteInt64((max(at-t.now, 0) + 500) / 1000) // rounded, as Redis
	case "pttl":
		c.conn.WriteInt64(max(at-t.now, 0))
	case "expiretime":
		c.conn.WriteInt64((at + 500) / 1000) // rounded, as Redis
	default:
		c.conn.WriteInt64(at)
	}
}

func cmdPersist(n *Node, c *client, args [][]byte) {
	t, v, at, found, ok := n.change(c, args[1:2])
	if !ok {
		return
	}
	defer t.close()
	if !found || at == 0 {
		c.conn.WriteInt(0)
		return
	}
	t.set(args[1], v, 0)
	if t.commit() {
		c.conn.WriteInt(1)
	}
}

// cmdSetEx: SETEX key seconds value, PSETEX key ms value.
func cmdSetEx(n *Node, c *client, args [][]byte) {
	name := strings.ToLower(string(args[0]))
	unit := "ex"
	if name == "psetex" {
		unit = "px"
	}
	at, msg := deadlineFrom(n.cmdNow(c), args[2], unit, name)
	if msg != "" {
		c.fail(msg)
		return
	}
	if !n.checkKey(c, args[1]) || !n.checkValue(c, args[3]) {
		return
	}
	t := n.begin(c, args[1:2])
	defer t.close()
	if _, err := t.load(args[1]); err != nil { // its old index entry goes
		n.replyErr(c, err)
		return
	}
	t.set(args[1], args[3], at)
	if t.commit() {
		c.conn.WriteString("OK")
	}
}

// cmdGetEx: GETEX key [EX s | PX ms | EXAT unix-s | PXAT unix-ms | PERSIST].
// As Redis, a missing key is a null reply before the time is checked.
func cmdGetEx(n *Node, c *client, args [][]byte) {
	var unit string
	var timeArg []byte
	persist := false
	for i := 2; i < len(args); i++ {
		a := strings.ToLower(string(args[i]))
		switch {
		case a == "persist" && unit == "" && !persist:
			persist = true
		case (a == "ex" || a == "px" || a == "exat" || a == "pxat") && unit == "" && !persist && i+1 < len(args):
			unit, timeArg = a, args[i+1]
			i++
		default:
			c.fail(errSyntax)
			return
		}
	}
	t, v, cur, found, ok := n.change(c, args[1:2])
	if !ok {
		return
	}
	defer t.close()
	if !found {
		c.conn.WriteNull()
		return
	}
	var at int64
	if unit != "" {
		var msg string
		if at, msg = deadlineFrom(n.cmdNow(c), timeArg, unit, "getex"); msg != "" {
			c.fail(msg)
			return
		}
	}
	var err error
	switch {
	case unit != "" && at <= t.now:
		_, err = t.del(args[1])
	case unit != "":
		t.set(args[1], v, at)
	case persist && cur != 0:
		t.set(args[1], v, 0)
	}
	if err != nil {
		n.replyErr(c, err)
		return
	}
	if t.commit() {
		c.conn.WriteBulk(v)
	}
}

// dueEntry is an expiry index entry whose time has come.
type dueEntry struct {
	db  int
	gen uint32
	at  int64
	key []byte
}

// expireBatch finds up to expireBatch due index entries of the cycle's
// walk and deletes their keys (if the value's own deadline agrees) and the
// entries in one batch. more says whether due entries may remain.
func (n *Node) expireBatch(e *expirer) (deleted int, more bool, err error) {
	more, err = n.dueEntries(e, expireBatch)
	if err != nil || len(e.due) == 0 {
		return 0, false, err
	}
	e.keys = e.keys[:0]
	for _, d := range e.due {
		e.keys = append(e.keys, d.key)
	}
	deleted, err = n.expireLocked(e)
	if err != nil {
		return deleted, false, err
	}
	return deleted, more, nil
}

// expireLocked deletes e.due's keys whose values still carry the entry's
// deadline, and every entry, under the keys' locks: the window in which a
// command may wait for the expirer is this function.
func (n *Node) expireLocked(e *expirer) (deleted int, err error) {
	unlock := n.locks.lockAll(e.keys)
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	// Writes submitted before the locks (by writers now done with these
	// keys) must be readable before the values are checked. The previous
	// batch's Barrier, after its unlock, made the expirer's own deletes
	// readable, so this one has only other writers' writes to wait for:
	// usually none, and then it returns at once (barrier).
	if err := n.barrier(); err != nil {
		return 0, err
	}
	// Reads of these keys that find them expired need not wait for this
	// batch now (settleExpired). Unmarked before the locks are released.
	n.ks.expiring.add(&n.locks, e.keys)
	marked := true
	defer func() {
		if marked {
			n.ks.expiring.remove(&n.locks, e.keys)
		}
	}()
	if err := n.dataKeys(e); err != nil {
		return 0, err
	}
	eng := n.eng()
	b := &e.b
	b.Reset()
	touched := 0
	for i := range e.due {
		d := &e.due[i]
		e.kbuf = appendExpiryKey(e.kbuf[:0], d.db, d.gen, d.at, d.key)
		b.Delete(e.kbuf)
		if i%expirePrefetch == 0 {
			// The next keys' lookups, their cache misses overlapped
			// (logkv.Prefetcher), just before their Gets.
			e.pf = e.pf[:0]
			for _, k := range e.data[i:min(i+expirePrefetch, len(e.data))] {
				if k != nil {
					e.pf = append(e.pf, k)
				}
			}
			if len(e.pf) > 1 {
				logkv.Prefetch(eng, e.pf)
			}
		}
		dk := e.data[i]
		if dk == nil {
			continue // a flushed generation: only the entry goes
		}
		// Into the expirer's own buffer: on an engine that can append a
		// value (logkv.ValueAppender) the check allocates nothing.
		v, err := logkv.AppendGet(eng, e.vbuf[:0], dk)
		if cap(v) <= maxKeptValueBuf {
			e.vbuf = v // a big value's buffer is not kept, as a client's is not
		}
		if errors.Is(err, logkv.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		_, at, err := decodeValue(v)
		if err != nil {
			return 0, fmt.Errorf("key %q: %w", d.key, err)
		}
		if at != d.at {
			continue // the key was rewritten: a stale entry
		}
		b.Delete(dk)
		e.due[touched], e.due[i] = e.due[i], e.due[touched] // touched first
		touched++
	}
	if err := b.Err(); err != nil {
		return 0, err
	}
	if err := n.backend.Submit(b); err != nil {
		return 0, err
	}
	n.state().expire.staleEntries.Add(int64(len(e.due) - touched))
	if n.ks.watch.count.Load() > 0 {
		// Under the keys' locks, so that an EXEC that takes them next
		// finds its WATCH broken.
		for _, d := range e.due[:touched] {
			n.touchKey(d.db, d.key)
		}
	}
	n.ks.expiring.remove(&n.locks, e.keys)
	marked = false
	unlock()
	locked = false
	// Make the deletes readable now, outside the keys' locks, rather than
	// at the next batch's Barrier under them: until then a GET of one of
	// these keys finds its expired value and takes the slow path
	// (settleExpired: this key's lock and a Barrier, on the client's event
	// loop), and the next batch would apply them to the engine while it
	// holds its own keys' locks. Readable, not durable: an expiry delete
	// lost in a crash leaves a key whose deadline has passed, which every
	// read hides and the next leader's expirer deletes again, and a
	// follower receives the delete with the next durable records.
	if err := n.backend.Barrier(); err != nil {
		return touched, err
	}
	if cap(b.Repr()) > 1<<20 {
		e.b = logkv.Batch{} // one batch of huge keys: do not keep its buffer
	}
	return touched, nil
}

// expirePrefetch is how many of a batch's keys the expirer hints to the
// engine at a time (logkv.Prefetch) before it reads them: lsm's Prefetch
// looks at 16 keys, and the lines it brings in must still be in cache when
// the Gets come.
const expirePrefetch = 16

// dataKeys sets e.data[i] to the engine key of e.due[i]'s value, or nil
// for an entry of a flushed generation (only the entry goes).
func (n *Node) dataKeys(e *expirer) error {
	if cap(e.darena) > 1<<20 {
		// The last batch had huge keys: do not keep its buffer, nor the
		// slices of it past data's and pf's lengths, which would pin it.
		e.darena = nil
		clear(e.data[:cap(e.data)])
		clear(e.pf[:cap(e.pf)])
	}
	e.data, e.darena = e.data[:0], e.darena[:0]
	ends := e.dends[:0]
	for i := range e.due {
		d := &e.due[i]
		cur, err := n.gen(d.db)
		if err != nil {
			e.dends = ends
			return err
		}
		if d.gen != cur {
			ends = append(ends, -1)
			continue
		}
		e.darena = appendDataKey(e.darena, d.db, d.gen, d.key)
		ends = append(ends, len(e.darena))
	}
	e.dends = ends
	start := 0 // slices now: darena no longer moves
	for _, end := range ends {
		if end < 0 {
			e.data = append(e.data, nil)
			continue
		}
		e.data = append(e.data, e.darena[start:end:end])
		start = end
	}
	return nil
}

// startWalk begins a cycle's part of a walk of the index: a new walk of
// every (db, gen) part of it from e.start, with the clock read now, or the
// walk an earlier cycle left at e.resume.
func (n *Node) startWalk(e *expirer) error {
	seek := e.resume
	if !e.walking {
		e.walking = true
		e.now = n.nowMs()
		e.hint = n.ks.nextDue.Load()
		e.next = math.MaxInt64
		seek = appendExpiryKey(e.kbuf[:0], 0, 0, e.start(e.hint), nil)
		// A deadline written from here on may be invisible to the
		// walk's iterators: dueWritten keeps the earliest. One written
		// before is readable after the Barrier, so the walk sees it.
		n.ks.dueWritten.Store(math.MaxInt64)
	}
	if err := n.barrier(); err != nil {
		e.walking = false
		return err
	}
	var it indexCursor
	if l, ok := n.eng().(keyLister); ok {
		e.list.reset(l, []byte{tagExpiry + 1})
		it = &e.list
	} else {
		var err error
		it, err = n.eng().NewIter(&logkv.IterOptions{LowerBound: []byte{tagExpiry}, UpperBound: []byte{tagExpiry + 1}})
		if err != nil {
			e.walking = false
			return err
		}
	}
	e.it = it
	e.valid = it.SeekGE(seek)
	return nil
}

// indexCursor is what a walk of the expiry index reads it with: an
// engine's iterator, or a listCursor.
type indexCursor interface {
	SeekGE(key []byte) bool
	Next() bool
	Key() []byte
	Error() error
	Close() error
}

// keyLister is an engine that lists a range's keys from its live state,
// page by page, without a snapshot (bitcask.DB.AppendKeys,
// memory.DB.AppendKeys). On bitcask and memory an iterator is a snapshot of
// the tree, and every write after one copies the tree nodes it changes:
// with a walk every cycle (every 5 ms while keys are due), nearly every
// delete of a mass expiry copied its path under the tree's write lock,
// which GETs wait for (on memory that was a fifth of the expirer's CPU and
// two thirds of its allocated bytes). The walk needs no snapshot: it
// checks each key's value under its lock before deleting it, and a deadline
// written during the walk is caught by dueWritten whether or not the walk
// sees it.
type keyLister interface {
	AppendKeys(keys [][]byte, arena []byte, lower, upper []byte, limit int) ([][]byte, []byte, error)
}

// listPage is how many keys a listCursor reads at a time: a batch's worth
// and then some, so a batch usually costs one read of the keydir.
const listPage = 2 * expireBatch

// listCursor is an indexCursor over a keyLister, a page at a time; each
// page is read at its own moment.
type listCursor struct {
	l     keyLister
	upper []byte
	keys  [][]byte
	arena []byte
	lower []byte // the next page's lower bound
	i     int
	err   error
}

func (c *listCursor) reset(l keyLister, upper []byte) {
	c.l, c.upper, c.err = l, upper, nil
	c.keys, c.i = c.keys[:0], 0
}

// fill reads the page that starts at c.lower.
func (c *listCursor) fill() bool {
	if cap(c.arena) > 1<<20 {
		c.arena = nil // the last page had huge keys: do not keep its buffer
	}
	c.keys, c.arena, c.i = c.keys[:0], c.arena[:0], 0
	c.keys, c.arena, c.err = c.l.AppendKeys(c.keys, c.arena, c.lower, c.upper, listPage)
	return c.err == nil && len(c.keys) > 0
}

func (c *listCursor) SeekGE(key []byte) bool {
	c.lower = append(c.lower[:0], key...)
	return c.fill()
}

func (c *listCursor) Next() bool {
	if c.i++; c.i < len(c.keys) {
		return true
	}
	if len(c.keys) < listPage {
		c.keys = c.keys[:0]
		return false // a short page was the range's last
	}
	// The next page starts just past the last key (its successor: the key
	// followed by a zero byte).
	c.lower = append(append(c.lower[:0], c.keys[len(c.keys)-1]...), 0)
	return c.fill()
}

func (c *listCursor) Key() []byte  { return c.keys[c.i] }
func (c *listCursor) Error() error { return c.err }
func (c *listCursor) Close() error { return nil }

// dueEntries fills e.due with up to limit entries of the walk with
// deadlines at or before the cycle's clock.
//
// When the walk finds everything due, it sets nextDue to the earliest
// deadline left, and the floor past the cycle's clock, but never past a
// deadline written during the walk (dueWritten), which its iterator may
// not have seen. A write of a deadline below nextDue lowers it, so nextDue
// is written with a compare-and-swap from the value read before the walk;
// one at or above it is caught by dueWritten, read after the swap (a
// writer lowers dueWritten before nextDue, so one that the read misses
// lowers nextDue after the swap).
func (n *Node) dueEntries(e *expirer, limit int) (more bool, err error) {
	e.due, e.arena = e.due[:0], e.arena[:0]
	it, from, now := e.it, e.start(e.hint), e.now
	defer func() {
		if err == nil && !more {
			e.walking = false
			n.ks.nextDue.CompareAndSwap(e.hint, e.next)
			written := n.ks.dueWritten.Load()
			lowerTo(&n.ks.nextDue, written)
			e.floor = min(now+1, written) // every entry due by now is gone
		}
	}()
	// offs: where each due key starts in e.arena (the arena may move);
	// the expirer's own slice, which a batch used to grow from nil (six
	// allocations a batch of 32).
	offs := e.offs[:0]
	defer func() {
		e.offs = offs
		for i := range e.due {
			end := len(e.arena)
			if i+1 < len(offs) {
				end = offs[i+1]
			}
			e.due[i].key = e.arena[offs[i]:end:end]
		}
	}()
	for e.valid {
		db, gen, at, key, valid := decodeExpiryKey(it.Key())
		if !valid {
			return false, fmt.Errorf("%w: expiry index key %q", logkv.ErrCorrupt, it.Key())
		}
		switch {
		case at < from:
			// A new (db, gen) part of the index: skip to its floor.
			e.valid = it.SeekGE(appendExpiryKey(e.kbuf[:0], db, gen, from, nil))
			continue
		case at > now:
			e.next = min(e.next, at)
			// Nothing more is due in (db, gen): on to the next generation.
			if gen < maxGen {
				e.valid = it.SeekGE(appendExpiryKey(e.kbuf[:0], db, gen+1, from, nil))
			} else if db+1 < maxDBs {
				e.valid = it.SeekGE(appendExpiryKey(e.kbuf[:0], db+1, 0, from, nil))
			} else {
				e.valid = false
			}
			continue
		}
		if len(e.due) == limit {
			return true, it.Error()
		}
		offs = append(offs, len(e.arena))
		e.arena = append(e.arena, key...)
		e.due = append(e.due, dueEntry{db: db, gen: gen, at: at})
		e.valid = it.Next()
	}
	return false, it.Error()
}

// start is where a walk of the index begins, given nextDue as read before
// the walk: the floor, or lower if a deadline below it was written since.
func (e *expirer) start(hint int64) int64 {
	return max(min(e.floor, hint), 0)
}
