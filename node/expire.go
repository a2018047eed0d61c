package node

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/logkv/logkv"
)

// Expiry. A key's deadline is stored with its value (keyspace.go) and
// indexed by time in the expiry range, so:
//
//   - No command ever sees a key past its deadline: tx.load hides it, on a
//     leader and on a follower alike, by the node's clock.
//   - Only a leader deletes: lazily when a writing command touches an
//     expired key, and actively in expireDue, which walks the index from
//     the oldest deadline and so finds exactly the keys due, a bounded
//     number per tick. Its deletes are ordinary batches, so followers get
//     them through the commit log, as Redis replicas get DELs; a follower
//     hides keys past their deadline meanwhile but never deletes on its own.
//   - Deadlines are data, so they survive restarts and full resyncs.

// Active expiry budget: at most expireBatch keys per batch, and
// bgInterval between rounds, so the expirer costs at most
// expireBatch*expireBatchesPerTick/bgInterval deletes a second (40k/s).
const (
	bgInterval           = 100 * time.Millisecond
	expireBatch          = 1000
	expireBatchesPerTick = 4
)

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

// expireDue deletes keys whose deadline has passed, oldest first, up to
// expireBatch*expireBatchesPerTick of them, and reports how many it
// deleted. It runs on a leader only.
func (n *Node) expireDue() (int, error) {
	if n.nowMs() < n.ks.nextDue.Load() {
		return 0, nil // nothing can be due yet
	}
	total := 0
	for range expireBatchesPerTick {
		deleted, more, err := n.expireBatch()
		total += deleted
		if err != nil || !more {
			return total, err
		}
	}
	return total, nil
}

// dueEntry is an expiry index entry whose time has come.
type dueEntry struct {
	db  int
	gen uint32
	at  int64
	key []byte
}

// expireBatch finds up to expireBatch due index entries and deletes their
// keys (if the value's own deadline agrees) and the entries in one batch.
// more says whether due entries may remain.
func (n *Node) expireBatch() (deleted int, more bool, err error) {
	now := n.nowMs()
	due, more, err := n.dueEntries(now, expireBatch)
	if err != nil || len(due) == 0 {
		return 0, false, err
	}
	keys := make([][]byte, len(due))
	for i, d := range due {
		keys[i] = d.key
	}
	unlock := n.locks.lockAll(keys)
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	if err := n.backend.Barrier(); err != nil {
		return 0, false, err
	}
	var b logkv.Batch
	var touched []dueEntry
	var kbuf []byte
	for _, d := range due {
		b.Delete(appendExpiryKey(kbuf[:0], d.db, d.gen, d.at, d.key))
		cur, err := n.gen(d.db)
		if err != nil {
			return 0, false, err
		}
		if d.gen != cur {
			continue // a flushed generation: only the entry goes
		}
		kbuf = appendDataKey(kbuf[:0], d.db, d.gen, d.key)
		v, err := n.eng().Get(kbuf)
		if errors.Is(err, logkv.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, false, err
		}
		_, at, err := decodeValue(v)
		if err != nil {
			return 0, false, fmt.Errorf("key %q: %w", d.key, err)
		}
		if at == d.at { // else the key was rewritten: a stale entry
			b.Delete(kbuf)
			touched = append(touched, d)
		}
	}
	if err := n.backend.Apply(&b); err != nil {
		return 0, false, err
	}
	if n.ks.watch.count.Load() > 0 {
		for _, d := range touched {
			n.touchKey(d.db, d.key)
		}
	}
	unlock()
	locked = false
	// Submitted writes are made durable (and shipped) by the next Sync; a
	// background writer has no pipeline end to wait for, so it syncs now,
	// without the keys' locks.
	return len(touched), more, n.backend.Sync()
}

// dueEntries returns up to limit expiry index entries with deadlines at or
// before now, over every database and generation.
//
// When it finds everything due, it sets nextDue to the earliest deadline
// left. A write of a deadline meanwhile lowers nextDue again, so nextDue
// is written with a compare-and-swap from the value read before the walk.
func (n *Node) dueEntries(now int64, limit int) (due []dueEntry, more bool, err error) {
	hint := n.ks.nextDue.Load()
	next := int64(math.MaxInt64)
	defer func() {
		if err == nil && !more {
			n.ks.nextDue.CompareAndSwap(hint, next)
		}
	}()
	if err := n.backend.Barrier(); err != nil { // see every deadline written before hint was read
		return nil, false, err
	}
	it, err := n.eng().NewIter(&logkv.IterOptions{LowerBound: []byte{tagExpiry}, UpperBound: []byte{tagExpiry + 1}})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	for ok := it.First(); ok; {
		db, gen, at, key, valid := decodeExpiryKey(it.Key())
		if !valid {
			return nil, false, fmt.Errorf("%w: expiry index key %q", logkv.ErrCorrupt, it.Key())
		}
		if at > now {
			next = min(next, at)
			// Nothing more is due in (db, gen): on to the next generation.
			if gen < maxGen {
				ok = it.SeekGE(expiryPrefix(db, gen+1))
			} else if db+1 < maxDBs {
				ok = it.SeekGE(expiryPrefix(db+1, 0))
			} else {
				break
			}
			continue
		}
		if len(due) == limit {
			return due, true, it.Error()
		}
		due = append(due, dueEntry{db: db, gen: gen, at: at, key: append([]byte(nil), key...)})
		ok = it.Next()
	}
	return due, false, it.Error()
}
