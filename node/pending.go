package node

import (
	"github.com/logkv/logkv"
	"github.com/tidwall/redcon"
)

// A client's blind writes (SET key value, MSET) are not handed to the
// backend one by one. They gather in the client's pendingWrites and go as
// one batch, with one key-lock round, one commit-log record and one engine
// apply, when the run ends: at the end of the pipeline, before any other
// command, or once the batch reaches pendingFlushBytes. Their OK replies are
// written then, in order, or each gets the batch's error. A batch commits
// whole or not at all, so every write of a run shares one outcome, which is
// what the client would have seen command by command: replies are sent only
// after the pipeline's sync either way. Redis clients see no difference but
// the speed: under redis-benchmark -P 16 the replicated leader spends its
// per-record costs (submit, framing, apply, shipping) once per pipeline.
//
// Nothing can overtake a pending run: every command that is not itself a
// blind write flushes it before it runs, and replyConn flushes it before any
// reply is written, including a SET's own argument error.

// pendingFlushBytes bounds a client's pending batch: past it the run is
// flushed, so a long pipeline of writes is submitted in pieces of about this
// size.
const pendingFlushBytes = 1 << 20

// pendingWrites is a client's run of blind writes not yet applied.
type pendingWrites struct {
	batch   logkv.Batch
	stripes []int           // key-lock stripes of the batch's keys
	cmds    []*commandStats // one per command whose OK reply is owed
	// kbuf and vbuf hold one pair's engine encoding (keyspace.go) on its
	// way into batch, which copies it.
	kbuf, vbuf []byte
	// firstDue is the earliest deadline the batch writes (0: none).
	firstDue int64
}

// queueWrite adds the pairs of one blind write (key, value, key, value...)
// to c's pending run; cmd owes an OK once the run is applied. The pairs are
// checked already and form a valid batch on their own. Each is encoded for
// the client's database with no deadline: a blind write clears a TTL, as in
// Redis, and leaves the old deadline's index entry to the expirer, which
// finds it stale (keyspace.go).
func (n *Node) queueWrite(c *client, cmd *command, pairs [][]byte) {
	n.queueWriteAt(c, cmd, pairs, 0)
}

// queueWriteAt is queueWrite with deadline expireAt (0: none) for every
// pair, each with its expiry index entry: SET key value EX|PX, which reads
// nothing either. Its deadline lies in the future when the command is
// parsed, but may pass before the run is applied: the key is then written
// expired, which readers never see and the expirer removes, as if it had
// expired a moment after the SET. The old deadline's entry, if any, stays
// stale as for a blind SET: a tx would have read the key to find it, and
// that read per key, with the command's own lock round, barrier and commit
// record, made loading keys with TTLs 6x slower than without (1M keys:
// 16-27 s against 2-3 s, docs/keyspace.md).
func (n *Node) queueWriteAt(c *client, cmd *command, pairs [][]byte, expireAt int64) {
	p := &c.pend
	if len(p.cmds) > 0 && p.batch.Size()+pairsSize(pairs) > pendingFlushBytes {
		n.flushWrites(c)
	}
	db := c.ks.db
	gen, err := n.gen(db)
	if err != nil {
		n.replyErr(c, err)
		return
	}
	for i := 0; i < len(pairs); i += 2 {
		p.kbuf = appendDataKey(p.kbuf[:0], db, gen, pairs[i])
		p.vbuf = appendValue(p.vbuf[:0], expireAt, pairs[i+1])
		p.batch.Set(p.kbuf, p.vbuf)
		if expireAt != 0 {
			p.kbuf = appendExpiryKey(p.kbuf[:0], db, gen, expireAt, pairs[i])
			p.batch.Set(p.kbuf, nil)
		}
		p.stripes = append(p.stripes, n.locks.stripe(pairs[i]))
	}
	if expireAt != 0 {
		// Before the apply, as tx.apply does, and again after it
		// (flushWrites).
		n.lowerNextDue(expireAt)
		if p.firstDue == 0 || expireAt < p.firstDue {
			p.firstDue = expireAt
		}
	}
	p.cmds = append(p.cmds, &n.metrics.cmds[cmd.id])
	if p.batch.Size() >= pendingFlushBytes {
		n.flushWrites(c)
	}
}

// pairsSize bounds the bytes pairs (key, value, key, value...) add to a
// batch's encoding: each with a length varint of at most 5 bytes, and per
// pair a kind byte, the key prefix and the value header, and an expiry
// index entry (a kind byte, the prefix, the key, two varints) should it
// have a deadline.
func pairsSize(pairs [][]byte) int {
	size := len(pairs) / 2 * (1 + maxDataPrefixLen + valueHeaderMax + 1 + maxExpiryPrefixLen + 5 + 5)
	for i := 0; i < len(pairs); i += 2 {
		size += len(pairs[i])
	}
	for _, a := range pairs {
		size += len(a) + 5
	}
	return size
}

// flushWrites applies c's pending run under its keys' locks and writes the
// replies it owes.
func (n *Node) flushWrites(c *client) {
	p := &c.pend
	if len(p.cmds) == 0 {
		return
	}
	unlock := n.locks.lockStripes(p.stripes)
	err := n.backend.Submit(&p.batch)
	if err == nil && n.ks.watch.count.Load() > 0 {
		n.touchBatch(&p.batch) // under the locks, as EXEC checks under them
	}
	unlock()
	if p.firstDue != 0 {
		// Again once applied: an expirer walk that read nextDue before
		// this write and the index before it was visible must not hide it.
		// Also when Submit failed: a write refused after it was logged
		// (errFenced, a quorum timeout) may be applied.
		n.lowerNextDue(p.firstDue)
	}
	p.firstDue = 0
	w := c.conn
	if err != nil {
		msg := n.errReply(err) // once: it logs corruption
		for _, s := range p.cmds {
			w.out = redcon.AppendError(w.out, msg)
			s.errors.Inc()
		}
	} else {
		for range p.cmds {
			w.out = redcon.AppendOK(w.out)
		}
		c.dirty = true
	}
	clear(p.cmds)
	p.cmds, p.stripes = p.cmds[:0], p.stripes[:0]
	if p.batch.Size() > 2*pendingFlushBytes {
		p.batch = logkv.Batch{} // one big MSET: do not keep its buffer
	} else {
		p.batch.Reset()
	}
}

// touchBatch marks the watchers of the client keys b wrote.
func (n *Node) touchBatch(b *logkv.Batch) {
	r := b.Reader()
	for {
		_, k, _, ok := r.Next()
		if !ok {
			return
		}
		if db, _, key, ok := decodeDataKey(k); ok {
			n.touchKey(db, key)
		}
	}
}

// queueable reports whether the command args would join a pending run: a
// plain SET, a SET with a relative deadline (EX or PX, whose deadline is
// in the future if it is valid), or an MSET, which write without reading.
// Anything else flushes the run first.
func queueable(cm *command, args [][]byte) bool {
	switch cm {
	case cmdSetEntry:
		return len(args) == 3 || len(args) == 5 && relativeExpiry(args[3])
	case cmdMSetEntry:
		return len(args) >= 3 && len(args)%2 == 1
	}
	return false
}

// relativeExpiry reports whether a is SET's EX or PX option.
func relativeExpiry(a []byte) bool {
	return len(a) == 2 && (a[0]|0x20 == 'e' || a[0]|0x20 == 'p') && a[1]|0x20 == 'x'
}

// replyConn is where a client's replies gather until the loop writes them
// (server.go). Every reply first applies the client's pending writes, whose
// OKs it must follow, so replies always leave in command order.
//
// Every reply passes through flush first, which is where the client's
// output limits are enforced as replies are produced (limits.go): base+out
// is what the client has not been sent, and past check, overLimit pauses
// its pipeline or closes it.
type replyConn struct {
	out []byte
	n   *Node
	c   *client
	// base is the output gnet had not sent when the pipeline started;
	// check is the unsent total past which flush calls overLimit.
	base, check int
	// paused: the output passed the soft limit, so the pipeline stops
	// after this command. cut: it passed the hard limit, so the client
	// is being closed and its output is dropped as it is produced.
	paused, cut bool
}

func (r *replyConn) flush() {
	if len(r.c.pend.cmds) > 0 {
		r.n.flushWrites(r.c)
	}
	if r.base+len(r.out) > r.check {
		r.overLimit()
	}
}

// WriteError writes msg as an error.
func (r *replyConn) WriteError(msg string) { r.flush(); r.out = redcon.AppendError(r.out, msg) }

// WriteString writes a simple string.
func (r *replyConn) WriteString(str string) { r.flush(); r.out = redcon.AppendString(r.out, str) }

// WriteBulk writes a bulk string.
func (r *replyConn) WriteBulk(bulk []byte) { r.flush(); r.out = redcon.AppendBulk(r.out, bulk) }

// WriteBulkString writes a bulk string.
func (r *replyConn) WriteBulkString(bulk string) {
	r.flush()
	r.out = redcon.AppendBulkString(r.out, bulk)
}

// WriteInt writes an integer.
func (r *replyConn) WriteInt(num int) { r.WriteInt64(int64(num)) }

// WriteInt64 writes an integer.
func (r *replyConn) WriteInt64(num int64) { r.flush(); r.out = redcon.AppendInt(r.out, num) }

// WriteArray writes an array header.
func (r *replyConn) WriteArray(count int) { r.flush(); r.out = redcon.AppendArray(r.out, count) }

// WriteNull writes a null.
func (r *replyConn) WriteNull() { r.flush(); r.out = appendNull(r.out, r.proto()) }
