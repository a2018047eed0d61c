package node

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Memory a client can make the node hold, and for how long.
//
// Output: a client's unsent replies are the replies of the pipeline being
// run (replyConn.out) plus what gnet has not written to its socket yet.
// They are counted as replies are produced: every reply passes through
// replyConn.checkLimits, which compares the count with the client's limits.
//
//   - Past the normal class's soft limit (client_output_buffer_limit), the
//     pipeline stops after the command that crossed it: the replies so far
//     are written, the rest of the client's input stays unread, and the
//     client is served again once gnet has written its output down to half
//     the soft limit (gnet has no drain callback, so the loop checks with a
//     timer, 1ms doubling to 50ms). A client that reads keeps its pipeline
//     going; one that does not stops costing memory at the soft limit.
//   - A client over the soft limit for soft_seconds running, or over the
//     hard limit at any moment, is closed, and its pending output is freed
//     at once, as Redis does.
//
// So a client holds at most hard + one reply element of output (a
// reply element is one bulk string, at most max_value_size).
//
// Input: what a client sent that the node has not run. It is bounded per
// client by limits.client_query_buffer_limit and, summed over all clients,
// by limits.query_buffer_budget; a client whose buffered input would pass
// either is closed. A request being read is at most limits.max_request_size
// (10 arguments of 16 KiB before AUTH, as Redis). Idle clients are closed
// after `timeout` seconds when it is set.
//
// Hence the bound on the memory clients can make the node hold:
//
//	query_buffer_budget + max_connections x (hard + max_value_size)
//
// plus hard for each MONITOR client's queued lines (monitor.go), gnet's
// per-connection buffers (a few KiB each) and what the engine holds. Lower
// max_connections or the hard limit to tighten it.

// OutputBufferLimit is one class's client-output-buffer-limit, as Redis':
// a client whose unsent replies pass Hard bytes, or stay over Soft bytes
// for SoftSeconds, is closed. 0 disables a limit.
type OutputBufferLimit struct {
	Hard        int64 `yaml:"hard"`
	Soft        int64 `yaml:"soft"`
	SoftSeconds int   `yaml:"soft_seconds"`
}

// OutputBufferLimits are the limits of Redis' client classes. Normal
// applies to every client; replica and pubsub are accepted for
// compatibility with Redis configurations (replicas use the replication
// port, and there is no pub/sub yet).
type OutputBufferLimits struct {
	Normal  OutputBufferLimit `yaml:"normal"`
	Replica OutputBufferLimit `yaml:"replica"`
	Pubsub  OutputBufferLimit `yaml:"pubsub"`
}

// DefaultOutputBufferLimits are the defaults. Redis leaves normal clients
// unlimited; a node caps them, so that a client that pipelines without
// reading cannot exhaust memory. The soft limit, where a pipeline pauses,
// leaves room for a whole max_value_size reply below the hard one.
var DefaultOutputBufferLimits = OutputBufferLimits{
	Normal:  OutputBufferLimit{Hard: 128 << 20, Soft: 32 << 20, SoftSeconds: 60},
	Replica: OutputBufferLimit{Hard: 256 << 20, Soft: 64 << 20, SoftSeconds: 60},
	Pubsub:  OutputBufferLimit{Hard: 32 << 20, Soft: 8 << 20, SoftSeconds: 60},
}

// Defaults of the input limits.
const (
	// DefaultQueryBufferBudget is limits.query_buffer_budget's default.
	DefaultQueryBufferBudget = 1 << 30
	// maxTimeout bounds timeout, as Redis bounds it (68 years: well
	// within a time.Duration).
	maxTimeout = math.MaxInt32
)

// unauthLimits bound a request before AUTH, as Redis 7 does: 10 arguments
// of at most 16 KiB.
var unauthLimits = parseLimits{maxArgs: 10, maxBulk: 16 << 10, unauth: true}

// validateLimits checks the client limits; bad reports each problem.
func (c *Config) validateLimits(bad func(format string, args ...any)) {
	for _, cl := range []struct {
		name string
		l    OutputBufferLimit
	}{{"normal", c.ClientOutputBufferLimit.Normal}, {"replica", c.ClientOutputBufferLimit.Replica}, {"pubsub", c.ClientOutputBufferLimit.Pubsub}} {
		if cl.l.Hard < 0 || cl.l.Soft < 0 || cl.l.SoftSeconds < 0 {
			bad("client_output_buffer_limit.%s: hard, soft and soft_seconds must be 0 (off) or positive", cl.name)
		}
		if cl.l.Hard > 0 && cl.l.Soft > cl.l.Hard {
			bad("client_output_buffer_limit.%s: soft %d is over hard %d", cl.name, cl.l.Soft, cl.l.Hard)
		}
	}
	l := c.Limits
	if l.ClientQueryBufferLimit < 0 || (l.ClientQueryBufferLimit > 0 && l.ClientQueryBufferLimit < l.MaxRequestSize) {
		bad("limits.client_query_buffer_limit %d must be 0 (twice max_request_size) or at least max_request_size (%d)", l.ClientQueryBufferLimit, l.MaxRequestSize)
	}
	if l.QueryBufferBudget < 0 || (l.QueryBufferBudget > 0 && l.QueryBufferBudget < int64(c.queryBufferLimit())) {
		bad("limits.query_buffer_budget %d must be 0 (1 GiB) or at least the client query buffer limit (%d)", l.QueryBufferBudget, c.queryBufferLimit())
	}
	if c.Timeout < 0 || c.Timeout > maxTimeout {
		bad("timeout %d must be 0 (never) to %d seconds", c.Timeout, maxTimeout)
	}
}

// queryBufferLimit is a client's input bound.
func (c *Config) queryBufferLimit() int {
	if c.Limits.ClientQueryBufferLimit > 0 {
		return c.Limits.ClientQueryBufferLimit
	}
	return 2 * c.Limits.MaxRequestSize
}

// security is a node's access control and client limits. What CONFIG SET
// can change lives in an immutable settings value behind cur: a change
// builds a new one and swaps it in, and readers load the pointer (once per
// pipeline on the event loops), so no reader ever takes a lock.
type security struct {
	access accessControl
	cur    atomic.Pointer[settings]
	// setMu serializes the changes (CONFIG SET), each a load, copy, edit
	// and store of cur.
	setMu sync.Mutex
	// timeoutKick wakes the idle reaper when timeout changes.
	timeoutKick chan struct{}
	// input is the input all clients have buffered (each client's share is
	// its inBuf).
	input atomic.Int64
}

// settings are the access and client-limit settings CONFIG SET may change
// while the node serves. A value is never modified once published (see
// security.cur): copy it, change the copy, publish the copy.
type settings struct {
	// users by name; "default" is there when it has a password.
	users map[string]*user
	// open: the default user has no password, so a client starts as the
	// default user at accessWrite (never admin).
	open bool
	// protected: protected mode refuses non-loopback clients.
	protected bool
	// out is client_output_buffer_limit as configured (for CONFIG GET and
	// REWRITE); the fields below are the normal class's, derived.
	out OutputBufferLimits
	// Output limits of normal clients, in bytes (math.MaxInt when off),
	// and where a pipeline pauses and resumes.
	hard, soft      int
	softFor         time.Duration
	pauseAt, resume int
	// queryLimit bounds a client's buffered input; budget all clients'.
	queryLimit int
	budget     int64
	// maxClients is limits.max_connections.
	maxClients int
	// timeout closes clients idle this long; 0 never.
	timeout time.Duration
}

// settings returns the node's current settings. Never modify them.
func (n *Node) settings() *settings { return n.sec.cur.Load() }

// changeSettings publishes a copy of the current settings as edit changes
// it. Readers see the old value or the new one, never a mix.
func (n *Node) changeSettings(edit func(s *settings)) {
	n.sec.setMu.Lock()
	defer n.sec.setMu.Unlock()
	s := *n.sec.cur.Load()
	edit(&s)
	n.sec.cur.Store(&s)
}

// setOutputLimits derives the normal class's limits from out.
func (s *settings) setOutputLimits(out OutputBufferLimits) {
	s.out = out
	l := out.Normal
	s.hard, s.soft = math.MaxInt, math.MaxInt
	if l.Hard > 0 {
		s.hard = int(min(l.Hard, math.MaxInt))
	}
	if l.Soft > 0 {
		s.soft = int(min(l.Soft, math.MaxInt))
	}
	s.softFor = time.Duration(l.SoftSeconds) * time.Second
	s.pauseAt = s.soft
	if s.pauseAt == math.MaxInt && s.hard != math.MaxInt {
		s.pauseAt = s.hard / 2 // stop producing well before the client is closed
	}
	s.resume = s.pauseAt / 2
}

// initLimits derives the limits from the config and publishes them with
// the users initAccess read.
func (n *Node) initLimits(users map[string]*user, open bool) {
	s := &settings{users: users, open: open, protected: open && n.cfg.ProtectedMode}
	s.setOutputLimits(n.cfg.ClientOutputBufferLimit)
	s.queryLimit = n.cfg.queryBufferLimit()
	s.budget = n.cfg.Limits.QueryBufferBudget
	if s.budget == 0 {
		s.budget = DefaultQueryBufferBudget
	}
	s.maxClients = n.cfg.Limits.MaxConnections
	s.timeout = time.Duration(n.cfg.Timeout) * time.Second
	n.sec.timeoutKick = make(chan struct{}, 1)
	n.sec.cur.Store(s)
}

// Why a client was closed, for logkv_clients_closed_total.
const (
	closedOutputHard = "output_hard_limit"
	closedOutputSoft = "output_soft_limit"
	closedQuery      = "query_buffer_limit"
	closedBudget     = "query_buffer_budget"
	closedTimeout    = "timeout"
	closedProtected  = "protected_mode"
)

// noteInput accounts for what c leaves buffered after the loop served it,
// and says whether c must be closed for it. It runs on c's loop.
func (n *Node) noteInput(c *client) bool {
	if c.closed {
		return false
	}
	buffered := c.gc.InboundBuffered()
	s := n.settings()
	if buffered > s.queryLimit {
		n.closeFor(c, closedQuery, "client query buffer over limits.client_query_buffer_limit; closing", "buffered", buffered, "limit", s.queryLimit)
		return true
	}
	delta := buffered - c.inBuf
	if delta > 0 && n.sec.input.Load()+int64(delta) > s.budget {
		n.closeFor(c, closedBudget, "clients' buffered input over limits.query_buffer_budget; closing the client adding to it", "buffered", buffered, "budget", s.budget)
		return true
	}
	if delta != 0 {
		n.sec.input.Add(int64(delta))
		c.inBuf = buffered
	}
	return false
}

// forgetInput drops c's share of the buffered input when it closes.
func (n *Node) forgetInput(c *client) {
	if c.inBuf != 0 {
		n.sec.input.Add(-int64(c.inBuf))
		c.inBuf = 0
	}
}

// closeFor counts and logs why c is being closed.
func (n *Node) closeFor(c *client, reason, msg string, args ...any) {
	n.metrics.closed.WithLabelValues(reason).Inc()
	// c.x.remote, not c.gc.RemoteAddr(): the idle reaper runs off the
	// loop, and gnet clears a closing connection's address on the loop.
	n.log.Warn(msg, append([]any{"remote", c.x.remote, "client", c.id}, args...)...)
}

// reapIdle closes clients idle longer than timeout until the node closes.
// Clients whose commands run off the loop (WAIT, REPLICAOF) are blocked, not
// idle, as in Redis. It reads timeout each round, so CONFIG SET timeout
// takes effect within a round; while it is 0 the reaper sleeps until
// CONFIG SET wakes it.
func (n *Node) reapIdle() {
	for {
		timeout := n.settings().timeout
		var tick <-chan time.Time
		if timeout > 0 {
			tick = time.After(min(time.Second, timeout/2))
		}
		select {
		case <-n.closed:
			return
		case <-n.sec.timeoutKick:
			continue
		case <-tick:
		}
		now := monotonic()
		for _, c := range n.connList() {
			if c.offLoop.Load() || now-time.Duration(c.active.Load()) <= timeout {
				continue
			}
			n.closeFor(c, closedTimeout, "client idle past timeout; closing", "timeout", timeout)
			c.gc.Close()
		}
	}
}

// reset starts a pipeline's accounting: base is the output gnet has not
// sent yet.
func (r *replyConn) reset(base int) {
	if r.cut {
		return
	}
	r.base = base
	s := r.n.settings()
	r.check = s.pauseAt
	if r.paused {
		r.check = s.hard
	}
}

// overLimit runs when the client's unsent output passed check: past the
// hard limit the client is closed and its output freed at once; past the
// soft limit its pipeline stops after this command.
func (r *replyConn) overLimit() {
	if r.cut {
		r.out = r.out[:0] // the client is closing: drop what comes
		return
	}
	s := r.n.settings()
	if unsent := r.base + len(r.out); unsent > s.hard {
		r.n.closeFor(r.c, closedOutputHard, "client output over its hard limit; closing", "unsent", unsent, "hard", s.hard)
		r.cut, r.out, r.check = true, nil, -1
		r.c.quit, r.c.drop = true, true
		return
	}
	r.paused = true
	r.check = s.hard
}

// afterWrite stalls c after its replies were written if its output passed
// the soft limit: until gnet has sent it down to half the limit, or at
// once (to serve the rest of its pipeline) if it already has.
func (n *Node) afterWrite(c *client) {
	if !c.conn.paused || c.quit || c.closed {
		return
	}
	c.conn.paused = false
	s := n.settings()
	if c.gc.OutboundBuffered() > s.resume {
		if c.softSince == 0 && c.gc.OutboundBuffered() > s.soft {
			c.softSince = monotonic()
		}
		n.stall(c, stallOutput, stallFirstCheck)
		return
	}
	c.stall, c.stallWait = stallOutput, stallFirstCheck
	c.stallDone.Store(true)
	c.gc.Wake(nil) // serve the rest of the pipeline
}

// pause reports whether c's pipeline must stop before its next command: a
// failed AUTH holds it back, or its output passed the soft limit.
func (c *client) pause() bool { return c.authDelay > 0 || c.conn.paused }
