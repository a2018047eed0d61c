package node

import (
	"github.com/logkv/logkv"
	"github.com/tidwall/redcon"
)

// A client's blind writes (SET key value, MSET) are not handed to the
// backend one by one. They gather in the client's run (pendingWrites) and
// go as one batch, with one key-lock round, one commit-log record and one
// engine apply, when the run ends: before any command that does not join
// it, at the end of the pipeline, or once the batch reaches
// pendingFlushBytes. Their OK replies are written then, in order, or each
// gets the batch's error. A batch commits whole or not at all, so every
// write of a run shares one outcome, which is what the client would have
// seen command by command: replies are sent only after the pipeline's sync
// either way. Redis clients see no difference but the speed: under
// redis-benchmark -P 16 the replicated leader spends its per-record costs
// (submit, framing, apply, shipping) once per pipeline.
//
// The run is submitted at a stage of its own, by the serving layer and
// nowhere else (submitRun: run, endPipeline and runOffLoop in server.go,
// beforeCommand and afterCommand under CLIENT REPLY OFF or SKIP, and
// queueWriteAt past the size cap), never while a command holds key locks
// and never by writing a reply: replyConn only writes bytes.
//
// Nothing can overtake a run: a command that does not join it ends it
// before it runs (queueable says which join), and a blind write refused
// while a run is open (a bad argument, MOVED, NOAUTH, READONLY) owes its
// error in the run, after the replies before it (client.fail: owe).

// pendingFlushBytes bounds a client's pending batch: past it the run is
// flushed, so a long pipeline of writes is submitted in pieces of about this
// size.
const pendingFlushBytes = 1 << 20

// pendingWrites is a client's run of blind writes not yet submitted.
type pendingWrites struct {
	batch   logkv.Batch
	stripes []int // key-lock stripes of the batch's keys
	// owed are the replies the run owes, in command order: one per blind
	// write, and the errors of the commands refused while the run was open.
	owed []owedReply
	// kbuf and vbuf hold one pair's engine encoding (keyspace.go) on its
	// way into batch, which copies it.
	kbuf, vbuf []byte
	// firstDue is the earliest deadline the batch writes (0: none).
	firstDue int64
}

// owedReply is a reply a run owes: a blind write's (stats set), which is
// OK or the batch's error once the batch is submitted, or a refused
// command's error (stats nil), written as is in its place.
type owedReply struct {
	stats   *commandStats
	refusal string
}

// open reports whether c has a run of blind writes not yet submitted.
func (p *pendingWrites) open() bool { return len(p.owed) > 0 }

// owe makes msg, the error of a command refused while the run is open, a
// reply of the run, so that it follows the replies owed before it. It
// reports false, owing nothing, when no run is open: the caller then writes
// the error at once.
func (p *pendingWrites) owe(msg string) bool {
	if !p.open() {
		return false
	}
	p.owed = append(p.owed, owedReply{refusal: msg})
	return true
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
	if p.open() && p.batch.Size()+pairsSize(pairs) > pendingFlushBytes {
		n.submitRun(c)
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
		// Before the submit, as tx.apply does, and again after it
		// (submitRun).
		n.lowerNextDue(expireAt)
		if p.firstDue == 0 || expireAt < p.firstDue {
			p.firstDue = expireAt
		}
	}
	p.owed = append(p.owed, owedReply{stats: &n.metrics.cmds[cmd.id]})
	if p.batch.Size() >= pendingFlushBytes {
		n.submitRun(c)
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

// submitRun is the queue stage's end: it submits c's run of blind writes,
// if one is open, as one batch under its keys' locks, and writes the
// replies the run owes, in order. The serving layer calls it (see the
// package comment above), never a command that holds key locks: a run's
// keys may be any keys, and a tx holding some of their stripes would wait
// for itself. It ends by checking c's output against its limits, as the
// replies it wrote may have crossed them.
func (n *Node) submitRun(c *client) {
	p := &c.pend
	if !p.open() {
		c.conn.flush()
		return
	}
	unlock := n.locks.lockStripes(p.stripes)
	err := n.backend.Submit(&p.batch)
	if err == nil && n.ks.watch.count.Load() > 0 {
		n.touchBatch(&p.batch) // under the locks, as EXEC checks under them
	}
	unlock()
	if err == nil {
		c.dirty = true
	}
	if p.firstDue != 0 {
		// Again once submitted: an expirer walk that read nextDue before
		// this write and the index before it was visible must not hide it.
		// Also when Submit failed: a write refused after it was logged
		// (errFenced, a quorum timeout) may be applied.
		n.lowerNextDue(p.firstDue)
	}
	p.firstDue = 0
	var msg string
	if err != nil {
		msg = n.errReply(err) // once: it logs corruption
	}
	for _, o := range p.owed {
		switch {
		case o.stats == nil:
			// A refused command's error: counted in INFO errorstats here,
			// as afterCommand found it not written yet.
			start := len(c.conn.out)
			c.conn.WriteError(o.refusal)
			if len(c.conn.out) > start { // else dropped: the client is cut
				n.state().countError(c.conn.out[start:])
			}
		case err != nil:
			c.conn.WriteError(msg)
			o.stats.errors.Inc()
		default:
			c.conn.WriteString("OK")
		}
	}
	clear(p.owed)
	p.owed, p.stripes = p.owed[:0], p.stripes[:0]
	if p.batch.Size() > 2*pendingFlushBytes {
		p.batch = logkv.Batch{} // one big MSET: do not keep its buffer
	} else {
		p.batch.Reset()
	}
	c.conn.flush()
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

// queueable reports whether the command args joins a client's run unless
// it is refused: a plain SET, a SET with a relative deadline (EX or PX,
// whose deadline is in the future if it is valid), or an MSET of at most
// pendingFlushBytes, which write without reading. Anything else ends the
// run before it runs (run in server.go), so it must say no to every command
// that may write a reply other than an error: a larger MSET runs on a tx of
// its own, whose key locks the run's submit would wait for.
func queueable(cm *command, args [][]byte) bool {
	switch cm {
	case cmdSetEntry:
		return len(args) == 3 || len(args) == 5 && relativeExpiry(args[3])
	case cmdMSetEntry:
		return len(args) >= 3 && len(args)%2 == 1 && pairsSize(args[1:]) <= pendingFlushBytes
	}
	return false
}

// relativeExpiry reports whether a is SET's EX or PX option.
func relativeExpiry(a []byte) bool {
	return len(a) == 2 && (a[0]|0x20 == 'e' || a[0]|0x20 == 'p') && a[1]|0x20 == 'x'
}

// replyConn is where a client's replies gather until the loop writes them
// (server.go). It only writes bytes: the replies of a client's pending
// blind writes are written by submitRun, which the serving layer calls
// before anything could overtake them.
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

// flush checks the client's unsent output against its limits. (It sends
// nothing: the loop does, writeReplies in server.go.)
func (r *replyConn) flush() {
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
