package node

import "fmt"

// Transactions: MULTI, EXEC, DISCARD, as Redis.
//
// Between MULTI and EXEC a client's commands are checked (name, arity,
// authentication, a follower's refusal of writes) and queued, each answered
// +QUEUED; one that fails the checks is answered its error and makes EXEC
// fail with EXECABORT, applying nothing. EXEC locks the keys of every
// queued command and every watched key, fails with a null reply if a
// watched key was modified or expired, and then runs the commands on one
// shared tx (keyspace.go): each reads the writes of those before it, each
// replies as it would alone (a runtime error is that command's reply, the
// others still apply), and their writes commit as ONE logkv.Batch, one
// commit-log record. So readers, followers and crash recovery see all of a
// transaction or none of it. If that batch fails, EXEC's replies are
// replaced by its error: nothing was applied.
//
// Commands that walk many keys without naming them (SCAN, KEYS, DBSIZE)
// see the engine with the transaction's own earlier writes laid over it
// (txview.go), as in Redis.
//
// A transaction that queued no write is a read: a follower runs it, and so
// may a readonly user, as a Redis replica does; a write queued there is
// refused when queued (-READONLY, or NOPERM) and aborts the transaction.
//
// The commands run inside EXEC are counted (INFO commandstats and
// errorstats), logged if slow and shown to MONITOR one by one, as Redis
// does: a monitor sees MULTI when it ran, then each command and EXEC at
// EXEC; the slow log has the commands, not EXEC.

// multiState is a client's queue between MULTI and EXEC.
type multiState struct {
	cmds []queuedCmd
	// aborted: a command failed its checks while queued.
	aborted bool
	// writes: a write command is queued.
	writes bool
}

// queuedCmd is one queued command with its own copy of the arguments.
type queuedCmd struct {
	cm   *command
	args [][]byte
}

// maxQueued bounds a transaction's queue, so one client cannot grow it
// without end (Redis bounds it by its query buffer and memory).
const maxQueued = 1 << 20

func init() {
	for _, c := range []*command{
		{name: "multi", arity: 1, run: cmdMulti},
		// EXEC is a write: it runs its writes under the pipeline's sync, and
		// a follower refuses it (queued reads run as well outside MULTI).
		{name: "exec", arity: 1, write: true, run: cmdExec},
		{name: "discard", arity: 1, run: cmdDiscard},
	} {
		register(c)
	}
	execCommand = commandTable["exec"]
}

// queueInMulti queues a command while c is in MULTI and reports whether it
// did (or refused it); MULTI's own commands run at once.
func (n *Node) queueInMulti(c *client, cm *command, args [][]byte) bool {
	m := c.ks.multi
	if cm != nil {
		switch cm.name {
		case "exec", "discard", "multi", "watch", "quit", "reset":
			return false
		}
	}
	switch {
	case cm == nil:
		n.metrics.unknown.Inc()
		c.fail(unknownCommand(args))
	case (cm.arity > 0 && len(args) != cm.arity) || (cm.arity < 0 && len(args) < -cm.arity):
		c.fail(wrongArity(cm.name))
	case !c.authed && !cm.noAuth:
		c.fail(errNoAuth)
	case cm.write && n.refusesWrites(c):
		c.fail(errReadOnly)
	case cm.admin && !n.checkAdmin(c):
	case !cm.admin && cm.write && c.access < accessWrite:
		c.fail(fmt.Sprintf(errWriteUser, cm.name))
	case !allowedInMulti(cm):
		c.fail("ERR Command not allowed inside a transaction")
	case len(m.cmds) >= maxQueued:
		c.fail("ERR too many commands in this transaction (at most 1048576); DISCARD it and split it")
	default:
		q := queuedCmd{cm: cm, args: make([][]byte, len(args))}
		size := 0
		for _, a := range args {
			size += len(a)
		}
		buf := make([]byte, 0, size) // one allocation for all arguments
		for i, a := range args {
			buf = append(buf, a...)
			q.args[i] = buf[len(buf)-len(a):]
		}
		m.cmds = append(m.cmds, q)
		m.writes = m.writes || cm.write
		c.conn.WriteString("QUEUED")
		return true
	}
	m.aborted = true
	return true
}

func cmdMulti(n *Node, c *client, args [][]byte) {
	if c.ks.multi != nil {
		c.fail("ERR MULTI calls can not be nested")
		return
	}
	c.ks.multi = &multiState{}
	c.conn.WriteString("OK")
}

func cmdDiscard(n *Node, c *client, args [][]byte) {
	if c.ks.multi == nil {
		c.fail("ERR DISCARD without MULTI")
		return
	}
	c.ks.multi = nil
	n.unwatchAll(c)
	c.conn.WriteString("OK")
}

func cmdExec(n *Node, c *client, args [][]byte) {
	m := c.ks.multi
	if m == nil {
		c.fail("ERR EXEC without MULTI")
		return
	}
	c.ks.multi = nil
	defer n.unwatchAll(c)
	if m.aborted {
		c.fail("EXECABORT Transaction discarded because of previous errors.")
		return
	}
	var keys [][]byte
	for _, q := range m.cmds {
		keys = append(keys, keysOf(q.cm, q.args)...)
	}
	for _, w := range c.ks.watched {
		keys = append(keys, []byte(w.key))
	}
	t := &tx{n: n, c: c, db: c.ks.db, r: n.eng(), write: true, shared: true}
	t.unlock = n.locks.lockAll(keys)
	defer t.release()
	if err := n.backend.Barrier(); err != nil {
		n.replyErr(c, err)
		return
	}
	t.now = n.nowMs() // after the wait, as begin (keyspace.go, "Expiry and writes")
	// Checked under the locks: a write to a watched key touches it before
	// releasing the key's lock.
	if n.watchFailed(c) {
		writeNullArray(c)
		return
	}
	c.conn.checkLimits()
	mark := len(c.conn.out)
	c.ks.exec = t
	c.conn.WriteArray(len(m.cmds))
	execMark := c.x.mark // where EXEC's reply starts, for CLIENT REPLY
	for _, q := range m.cmds {
		n.runQueued(c, q.cm, q.args)
	}
	c.x.mark = execMark
	c.ks.exec = nil
	if err := t.apply(); err != nil {
		c.conn.out = c.conn.out[:mark] // none of it applied: no reply may say so
		n.replyErr(c, err)
	}
	c.failed = false
}

// readOnlyExec reports whether cm is an EXEC whose transaction queued no
// write, which a follower and a readonly user may run (run, permitted).
func readOnlyExec(c *client, cm *command) bool {
	return cm == execCommand && c.ks.multi != nil && !c.ks.multi.writes
}

// execCommand is EXEC's table entry.
var execCommand *command

// runQueued runs one command of a transaction inside EXEC, with the
// bookkeeping run gives a command outside one (afterQueued, cmd_server.go).
func (n *Node) runQueued(c *client, cm *command, args [][]byte) {
	c.conn.checkLimits()
	c.x.mark = len(c.conn.out)
	c.failed = false
	start := monotonic()
	cm.run(n, c, args)
	n.afterQueued(c, cm, args, monotonic()-start)
}

// keysOf returns the keys a command names, by its table entry's positions.
func keysOf(cm *command, args [][]byte) [][]byte {
	if cm.first == 0 || cm.first >= len(args) {
		return nil
	}
	last := cm.last
	if last < 0 {
		last += len(args)
	}
	last = min(last, len(args)-1)
	var keys [][]byte
	for i := cm.first; i <= last; i += max(cm.step, 1) {
		keys = append(keys, args[i])
	}
	return keys
}

// writeNullArray writes a null array, EXEC's reply when a watched key
// changed: *-1 in RESP2, _ in RESP3 (resp3.go).
func writeNullArray(c *client) { c.conn.WriteNullArray() }
