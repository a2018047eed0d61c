package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
	"github.com/tidwall/redcon"
)

// Client connections are served by gnet event loops (event_loops of them,
// by default half the cores), the way Redis serves them from its own: a loop
// reads whatever its ready connections sent, runs each one's complete
// requests, and writes each one's replies with one system call. This
// replaced redcon's server, which runs a goroutine per connection. Measured
// with redis-benchmark -P 16 -c 50 on a server that answers from a map, the
// goroutines cost 40% more CPU per request and reached 0.65x of Redis, where
// gnet reached 0.9x.
//
// A pipeline that wrote is not answered at once: its client is held until
// its loop's group sync (loopSync), which covers every pipeline the loop
// served meanwhile.
//
// A loop must not wait long, or every connection on it waits too. So a
// request that may (WAIT, REPLICAOF; every write when sync replication makes
// Submit wait for the quorum; a write that reads, or a read after this
// pipeline's writes, when making writes visible waits for an fsync) runs on
// a goroutine of its own: the loop hands over the client's complete requests
// from that one on, leaves whatever else the client sends buffered, and
// picks the client up again when the goroutine is done. Its replies are
// written in order after those of the requests run on the loop before it,
// which go out at once unless they wait for a sync (sendAhead).
// A client's state belongs to the loop, or while it is busy, to its
// goroutine.
//
// Accepting stays with the node (its listener is bound in New, so tests can
// use port 0): the accept loop checks the connection limit and enrolls each
// accepted connection with a gnet event loop.

// client is one connection's state.
type client struct {
	gc     gnet.Conn
	conn   *replyConn
	id     int64
	authed bool
	// gone is closed when the connection closes, so a WAIT stops
	// waiting for it.
	gone chan struct{}
	// x is what CLIENT, HELLO, MONITOR and CLIENT REPLY keep
	// (cmd_client.go).
	x clientExt
	// user is who the client authenticated as (nil: the default user of
	// a node without a password); access is what it may run (access.go).
	// authed is access != accessNone.
	user   *user
	access accessLevel
	// local: the client connected from loopback; source is its address
	// for the AUTH throttle.
	local  bool
	source netip.Prefix
	// authDelay: a failed AUTH holds the pipeline's replies back this long.
	authDelay time.Duration
	// cmd is the command running.
	cmd *command
	// stall is why the loop does not serve the client now (stallNone,
	// stallAuth, stallOutput); a timer sets stallDone after stallWait.
	stall     stallKind
	stallWait time.Duration
	stallDone atomic.Bool
	// softSince is when the client's unsent output went over the soft
	// limit, by monotonic; 0 while it is under.
	softSince time.Duration
	// inBuf is the input the client had buffered after it was last
	// served, its share of the node's query_buffer_budget.
	inBuf int
	// active is when the client last sent something, by monotonic;
	// offLoop is set while its commands run off the loop.
	active  atomic.Int64
	offLoop atomic.Bool
	// parser keeps the state of a request read in parts (resp.go).
	parser reqParser
	// dirty: this pipeline wrote, so it syncs before its replies go out.
	dirty  bool
	failed bool
	quit   bool
	// drop: a sync failed; the connection closes without its replies, which
	// may claim writes that are not durable.
	drop bool
	// fence: reads on a sync-mode cluster leader whose replies wait until
	// the quorum holds what they saw (readindex.go).
	fence readFence
	// pend is the run of blind writes not yet submitted (writepath.go).
	pend pendingWrites
	// ks is the selected database, MULTI's queue and WATCHed keys
	// (keyspace.go, multi.go, watch.go).
	ks clientKS
	// readonly: the client sent READONLY, so a cluster follower serves its
	// reads of the follower's own slots (route.go).
	readonly bool
	// clock is when the last command of the current pipeline ended, by
	// monotonic; 0 before its first.
	clock time.Duration

	args [][]byte // parsed arguments, reused
	// kbuf holds an engine key on its way to the engine (getFast), reused.
	kbuf []byte
	// pfKeys holds the keys prefetchGets hints (getfast.go), reused.
	pfKeys [][]byte
	// hint decides whether prefetchGets hints a pipeline (getfast.go).
	hint hintGate
	// vbuf holds the value a GET read, until its reply copies it (getFast),
	// reused; at most maxKeptValueBuf bytes are kept.
	vbuf []byte
	// tally gathers the metrics of the pipeline's commands (metrics.go).
	tally cmdTally
	// hits and misses count the pipeline's GETs that found their key and
	// that did not, added to INFO's keyspace_hits and keyspace_misses when
	// it ends (publishTally): plain counters, not an atomic a GET.
	hits, misses int64
	// need is how many bytes must be buffered before a request can be
	// complete: the loop does not parse again before.
	need int
	// verdict is the CLIENT PAUSE check's verdict on the command about to
	// run, kept until run has refused or run it (pauseVerdict).
	verdict pauseVerdict
	// busy: the client's requests in raw run on a goroutine; done is set
	// when they have.
	busy bool
	done atomic.Bool
	raw  []byte
	// held: the pipeline's writes wait for its loop's next group sync
	// before their replies go out (see loopSync).
	held   bool
	loop   *loopSync
	closed bool // OnClose ran (on the loop)
	// enrolled: gc is set (under the node's connsMu).
	enrolled bool
}

// clockBase is the origin of monotonic.
var clockBase = time.Now()

// monotonic returns the time since clockBase: time.Since reads only the
// monotonic clock, where time.Now reads the wall clock too.
func monotonic() time.Duration { return time.Since(clockBase) }

func (c *client) fail(msg string) {
	if !c.pend.owe(msg) { // while a run is open, its replies come first (writepath.go)
		c.conn.WriteError(msg)
	}
	c.failed = true
}

// Protocol limits: Redis' own (proto-max-bulk-len is 512 MB; a request array
// has at most 1024*1024 elements). limits.max_request_size bounds requests
// further, with its own error; before AUTH, unauthLimits apply.
var requestLimits = parseLimits{maxArgs: 1 << 20, maxBulk: 512 << 20}

// stallKind is why the loop leaves a client's input unread for a while.
type stallKind uint8

const (
	stallNone   stallKind = iota
	stallAuth             // a failed AUTH's reply waits out the backoff
	stallOutput           // its unsent replies are over the soft limit
)

// Output stalls check gnet's buffer after these delays, doubling.
const (
	stallFirstCheck = time.Millisecond
	stallMaxCheck   = 50 * time.Millisecond
)

// server is the gnet event handler of a node's client connections.
type server struct {
	gnet.BuiltinEventEngine
	n *Node
}

// startLoops sets up access control and the client limits, and starts the
// event loops.
func (n *Node) startLoops() error {
	if err := n.initAccess(); err != nil {
		return err
	}
	go n.reapIdle()
	cli, err := gnet.NewClient(&server{n: n},
		gnet.WithNumEventLoop(n.eventLoops()),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gnetLogger{n}))
	if err != nil {
		return fmt.Errorf("node: client event loops: %w", err)
	}
	if err := cli.Start(); err != nil {
		return fmt.Errorf("node: client event loops: %w", err)
	}
	n.loops = cli
	return nil
}

// maxEventLoops bounds the event_loops setting.
const maxEventLoops = 256

// eventLoops is how many event loops serve clients (Config.EventLoops).
// Half the cores by default: on 2 cores, redis-benchmark -P 16 against a
// replicated leader ran SET 13% faster with one loop than with two, and
// with a quarter less of the leader's CPU.
func (n *Node) eventLoops() int {
	if n.cfg.EventLoops > 0 {
		return n.cfg.EventLoops
	}
	return max(1, runtime.GOMAXPROCS(0)/2)
}

// acceptLoop accepts clients until the listener closes.
func (n *Node) acceptLoop() error {
	var delay time.Duration
	for {
		nc, err := n.respLn.Accept()
		if err != nil {
			if n.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors, most likely: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			n.log.Warn("accept failed; retrying", "err", err, "in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		n.admit(nc)
	}
}

// admit enrolls nc with an event loop, or refuses it past the connection
// limit with Redis' error.
func (n *Node) admit(nc net.Conn) {
	set := n.settings()
	c := &client{id: n.clientID.Add(1), access: set.startAccess(), gone: make(chan struct{})}
	c.x.init(nc)
	c.authed = c.access != accessNone
	c.source, c.local = sourceOf(nc.RemoteAddr())
	if set.protected && !c.local {
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(nc, "-"+errDenied+"\r\n")
		nc.Close()
		n.metrics.closed.WithLabelValues(closedProtected).Inc()
		return
	}
	c.active.Store(int64(monotonic()))
	c.conn = &replyConn{n: n, c: c}
	n.connsMu.Lock()
	over := len(n.conns) >= set.maxClients || n.closing.Load()
	if !over {
		n.conns[c] = struct{}{}
		n.connsWG.Add(1)
	}
	n.connsMu.Unlock()
	if over {
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(nc, "-"+errTooManyConns+"\r\n")
		nc.Close()
		n.metrics.rejected.Inc()
		return
	}
	n.metrics.connections.Inc()
	// Enroll duplicates the socket for the loop and closes nc; OnOpen has
	// run when it returns.
	if _, err := n.loops.EnrollContext(nc, c); err != nil {
		n.log.Warn("client connection not served", "remote", nc.RemoteAddr(), "err", err)
		n.forget(c)
		return
	}
	n.connsMu.Lock()
	c.enrolled = true
	closing := n.closing.Load()
	n.connsMu.Unlock()
	if closing {
		c.gc.Wake(nil) // closeClients may have missed it: OnTraffic closes it
	}
}

// forget removes a closed client.
func (n *Node) forget(c *client) {
	n.connsMu.Lock()
	_, ok := n.conns[c]
	delete(n.conns, c)
	n.connsMu.Unlock()
	if ok {
		n.connsWG.Done()
	}
}

func (s *server) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	c := gc.Context().(*client)
	c.gc = gc
	c.loop = s.n.loopSyncOf(gc.EventLoop())
	return nil, gnet.None
}

func (s *server) OnClose(gc gnet.Conn, err error) gnet.Action {
	c, _ := gc.Context().(*client)
	if c == nil {
		return gnet.None
	}
	if err != nil && !errors.Is(err, io.EOF) {
		s.n.log.Debug("client connection ended", "remote", gc.RemoteAddr(), "err", err)
	}
	c.closed = true
	close(c.gone)
	s.n.forgetInput(c)
	if !c.busy {
		// Off the loop (c.busy) a goroutine still owns the replies: it
		// ends when the command does (WAIT: at once, c.gone is closed).
		c.conn.out = nil
	}
	s.n.unwatchAll(c)
	s.n.forget(c)
	return gnet.None
}

func (s *server) OnTraffic(gc gnet.Conn) gnet.Action {
	c := gc.Context().(*client)
	n := s.n
	c.active.Store(int64(monotonic()))
	a := n.traffic(c)
	if a == gnet.None && n.noteInput(c) {
		a = gnet.Close // its input stays within the limits
	}
	return a
}

// traffic serves c once it has sent something or its goroutine or stall is
// over. Input it does not consume waits in gnet's buffer.
func (n *Node) traffic(c *client) gnet.Action {
	if c.held {
		return gnet.None // input waits until the group sync
	}
	if c.busy {
		if !c.done.Load() {
			return gnet.None // until the goroutine is done
		}
		c.busy = false
		c.done.Store(false)
		if a := n.writeReplies(c); a != gnet.None || c.stall != stallNone {
			return a
		}
	}
	if c.stall != stallNone {
		if a, over := n.stallOver(c); !over {
			return a
		}
	}
	if n.closing.Load() {
		return gnet.Close // between pipelines: nothing is owed
	}
	return n.serve(c)
}

// stall stops serving c for a while: its replies so far have been written
// and its input stays buffered until stallOver says the stall is over. A
// timer wakes the loop to check: gnet tells no one when it has written a
// connection's output.
func (n *Node) stall(c *client, kind stallKind, wait time.Duration) {
	c.stall, c.stallWait = kind, wait
	c.stallDone.Store(false)
	time.AfterFunc(wait, func() {
		c.stallDone.Store(true)
		c.gc.Wake(nil) // fails once c is closed, which is fine
	})
}

// stallOver reports whether c's stall is over, and if not, what to do with
// c (it may have overstayed the soft limit). It runs on c's loop.
func (n *Node) stallOver(c *client) (gnet.Action, bool) {
	if !c.stallDone.Load() {
		return gnet.None, false // input arrived; the timer has not fired
	}
	switch c.stall {
	case stallAuth:
		c.authDelay, c.stall = 0, stallNone
		if a := n.writeReplies(c); a != gnet.None || c.stall != stallNone {
			return a, false
		}
	case stallOutput:
		if a := n.checkSoft(c); a != gnet.None {
			return a, false
		}
		if c.gc.OutboundBuffered() > n.settings().resume {
			n.stall(c, stallOutput, min(2*c.stallWait, stallMaxCheck))
			return gnet.None, false
		}
	}
	c.stall = stallNone
	return gnet.None, true
}

// checkSoft closes c if its unsent output has stayed over the soft limit
// for soft_seconds. It runs on c's loop, between pipelines.
func (n *Node) checkSoft(c *client) gnet.Action {
	s := n.settings()
	if c.gc.OutboundBuffered() <= s.soft {
		c.softSince = 0
		return gnet.None
	}
	now := monotonic()
	if c.softSince == 0 {
		c.softSince = now
		return gnet.None
	}
	if now-c.softSince > s.softFor {
		n.closeFor(c, closedOutputSoft, "client output over its soft limit for soft_seconds; closing", "unsent", c.gc.OutboundBuffered(), "soft", s.soft)
		return gnet.Close
	}
	return gnet.None
}

// serve runs c's complete requests on the loop, up to one that must run off
// it.
func (n *Node) serve(c *client) gnet.Action {
	gc := c.gc
	if gc.InboundBuffered() < c.need {
		return gnet.None
	}
	c.need = 0
	buf, _ := gc.Peek(-1)
	off := 0
	var perr string
	c.conn.reset(gc.OutboundBuffered())
	n.prefetchGets(c, buf)
	var lim parseLimits
	for !c.quit && !c.pause() {
		if !c.authed {
			lim = unauthLimits
		} else {
			lim = requestLimits
		}
		args, size, need, err := c.parser.parse(buf[off:], c.args, lim)
		c.args = args[:0]
		if err != nil {
			perr, c.quit = err.Error(), true
			break
		}
		if max(size, need) > n.cfg.Limits.MaxRequestSize {
			perr, c.quit = fmt.Sprintf("ERR request too large: more than %d bytes without a complete command (limits.max_request_size)", n.cfg.Limits.MaxRequestSize), true
			break
		}
		if size == 0 {
			c.need = need
			break
		}
		if len(args) == 0 {
			off += size
			continue
		}
		cm := n.lookup(args[0])
		if n.mayWait(c, cm, args) {
			end := off + completeRequests(buf[off:], lim)
			c.raw = append(c.raw[:0], buf[off:end]...)
			gc.Discard(end)
			n.sendAhead(c)
			c.busy = true
			c.offLoop.Store(true)
			go n.runOffLoop(c)
			return gnet.None
		}
		off += size
		n.run(c, cm, args)
	}
	if off > 0 {
		gc.Discard(off) // Discard(0) would discard everything
	}
	c.hint.note(c.hits, c.misses) // before endPipeline publishes (and zeroes) them
	return n.endPipeline(c, perr)
}

// sendAhead writes the replies of the pipeline's commands run on the loop
// so far, before the rest goes off it, when nothing holds them back: Redis
// sends a client's earlier replies before one that blocks (a paused write,
// WAIT) at once. What holds them is endPipeline's: writes to sync first
// (pending blind writes, which stay pending to share the batch of what
// follows, or applied ones: dirty), a read fence owed, a failed AUTH's
// delay, output over the soft limit or being cut.
func (n *Node) sendAhead(c *client) {
	out := c.conn.out
	if len(out) == 0 || c.pend.open() || c.dirty || c.fence.owed() || c.drop || c.authDelay > 0 || c.conn.paused || c.conn.cut {
		return
	}
	if _, err := c.gc.Write(out); err != nil {
		return // the connection is closing: OnClose drops the rest
	}
	c.conn.base += len(out) // counted as unsent still, for the output limits
	c.conn.out = out[:0]
}

// mayWait reports whether command cm may wait long (for an fsync, followers
// or a new leader), so it and what follows run off the loop. Blind writes
// only queue, and the pipeline's sync waits in the loop's group sync, so
// they stay on the loop unless Submit itself waits.
func (n *Node) mayWait(c *client, cm *command, args [][]byte) bool {
	b := n.backend
	switch {
	case cm == nil:
		return false
	case cm.slow, cm.slowArgs > 0 && len(args) > cm.slowArgs, cm.write && b.SubmitWaits():
		return true
	case n.srv.pause.pauses(cm):
		// Decided here once, for run to keep (pauseVerdict): a refusal is
		// answered on the loop, what the pause holds waits off it.
		c.verdict = n.pauseCheck(c, cm, args)
		return c.verdict == pauseHolds
	case cm == execCommand && heavyExec(c):
		return true // its heavy commands run under the cap (heavyRun), never on the loop
	case !b.SyncWaits() || b.Visible():
		return false
	case cm.write:
		return !queueable(cm, args) // its Barrier syncs
	}
	// Reading this pipeline's writes syncs them first: those submitted
	// (dirty) and those still queued in the run, which run submits before
	// the read (SET k v; GET k in one read has not submitted the SET yet).
	return c.dirty || c.pend.open()
}

// completeRequests returns how many bytes of buf are complete requests.
func completeRequests(buf []byte, lim parseLimits) int {
	var args [][]byte
	var p reqParser
	off := 0
	for {
		var size int
		var err error
		args, size, _, err = p.parse(buf[off:], args, lim)
		if err != nil || size == 0 {
			return off
		}
		off += size
	}
}

// endPipeline ends a pipeline run on the loop: it applies the pending
// writes, syncs if the pipeline wrote, and writes the replies, then perr if
// the client broke the protocol.
func (n *Node) endPipeline(c *client, perr string) gnet.Action {
	n.submitRun(c)
	n.publishTally(c)
	c.clock = 0
	if perr != "" {
		c.conn.out = redcon.AppendError(c.conn.out, perr)
	}
	if (c.dirty || c.fence.owed()) && c.loop.hold(c) {
		return gnet.None
	}
	n.syncDirty(c)
	return n.writeReplies(c)
}

// publishTally adds what c's pipeline gathered to the node's metrics and
// INFO's counters, before its replies go out.
func (n *Node) publishTally(c *client) {
	c.tally.publish()
	if c.hits|c.misses != 0 {
		s := n.state()
		s.hits.Add(c.hits)
		s.misses.Add(c.misses)
		c.hits, c.misses = 0, 0
	}
}

// syncDirty syncs the pipeline's writes before its replies go out.
func (n *Node) syncDirty(c *client) {
	if c.dirty && !c.drop {
		c.dirty = false
		if err := n.backend.Sync(); err != nil {
			n.syncFailed(c, err)
		}
	}
	n.settleReads(c) // reads owed on a sync-mode leader (readindex.go)
}

// runOffLoop runs c.raw's requests and the pipeline's sync, then hands c
// back to its loop.
func (n *Node) runOffLoop(c *client) {
	raw := c.raw
	var args [][]byte
	var p reqParser
	for len(raw) > 0 && !c.quit {
		var size int
		lim := requestLimits
		if !c.authed {
			lim = unauthLimits
		}
		args, size, _, _ = p.parse(raw, args, lim)
		if size == 0 {
			break // cannot happen: raw holds complete requests
		}
		raw = raw[size:]
		if len(args) > 0 {
			cm := n.lookup(args[0])
			heavy := heavyRun(c, cm, args)
			if heavy {
				n.heavy <- struct{}{} // waits while others' heavy commands hold the CPUs
			}
			n.run(c, cm, args)
			if heavy {
				<-n.heavy
			}
		}
	}
	n.submitRun(c)
	n.publishTally(c)
	c.clock = 0
	n.syncDirty(c)
	if cap(c.raw) > 1<<20 {
		c.raw = nil
	}
	c.offLoop.Store(false)
	c.active.Store(int64(monotonic()))
	c.done.Store(true)
	c.gc.Wake(nil) // OnTraffic writes the replies and goes on
}

// heavyRun reports whether running cm now keeps a CPU busy for long, so
// that it must hold a token of Node.heavy while it runs: a heavy command
// (command.heavy, or past its slowArgs), or an EXEC whose transaction
// queued one. A command that MULTI only queues is not heavy: it runs at
// EXEC, under EXEC's token.
//
// The cap and the key locks cannot deadlock: every command takes its token
// before it takes any key lock (EXEC takes its locks in cmdExec, which runs
// under the token), and a command that holds key locks never waits for a
// token.
func heavyRun(c *client, cm *command, args [][]byte) bool {
	switch {
	case cm == nil:
		return false
	case cm == execCommand:
		return heavyExec(c)
	case c.ks.multi != nil:
		return false // queued
	}
	return heavyCommand(cm, args)
}

// heavyCommand reports whether cm with args is CPU-heavy (command.heavy).
func heavyCommand(cm *command, args [][]byte) bool {
	return cm.heavy || cm.slowArgs > 0 && len(args) > cm.slowArgs
}

// heavyExec reports whether c's EXEC will run a heavy command: KEYS inside
// MULTI/EXEC is as much CPU as outside, and must not escape the cap (or,
// as EXEC ran on the event loop, hold a loop for its whole walk).
func heavyExec(c *client) bool {
	m := c.ks.multi
	if m == nil || m.aborted {
		return false
	}
	for _, q := range m.cmds {
		if heavyCommand(q.cm, q.args) {
			return true
		}
	}
	return false
}

// writeReplies sends c's replies, and says whether to close c now. A
// failed AUTH holds them back, and output over the soft limit stops the
// pipeline: then c stalls, and is served again when the stall is over.
func (n *Node) writeReplies(c *client) gnet.Action {
	n.answerReads(c) // readindex.go
	if c.drop {
		c.conn.out = nil // may acknowledge writes that are not durable
		return gnet.Close
	}
	if c.authDelay > 0 {
		if c.stall != stallAuth {
			n.stall(c, stallAuth, c.authDelay)
		}
		return gnet.None // stallOver writes them
	}
	defer n.afterWrite(c)
	if out := c.conn.out; len(out) > 0 {
		c.gc.Write(out)
		if cap(out) > 1<<20 {
			c.conn.out = nil // one big reply: do not keep its buffer
		} else {
			c.conn.out = out[:0]
		}
	}
	if c.quit || n.closing.Load() {
		return gnet.Close
	}
	return gnet.None
}

// run runs one command. A panic in it is the command's failure, not the
// node's: the client gets an error, the stack is logged and counted
// (logkv_command_panics_total), and every other client goes on.
func (n *Node) run(c *client, cm *command, args [][]byte) {
	defer n.recoverCommand(c, cm)
	defer func() { c.verdict = pauseUnchecked }() // the verdict was this command's
	c.cmd = cm
	if n.testHookCommand != nil {
		n.testHookCommand(args)
	}
	if !queueable(cm, args) {
		n.submitRun(c) // a command that does not join the run ends it
	}
	n.beforeCommand(c, cm)
	took := time.Duration(-1) // stays so for a rejected command
	// A key of another shard's slot: MOVED, CROSSSLOT (route.go). Before
	// the pause, as Redis redirects before it checks a pause
	// (processCommand); and again after one, which a slot move may have
	// ended with the slot gone.
	if n.misrouted(c, cm, args) || (n.waitPause(c, cm, args) && n.misrouted(c, cm, args)) {
		n.afterCommand(c, cm, args, took)
		return
	}
	if c.ks.multi != nil && n.queueInMulti(c, cm, args) {
		return // queued, or refused (multi.go)
	}
	switch {
	case cm == nil:
		n.metrics.unknown.Inc()
		c.fail(unknownCommand(args))
	case wrongArgCount(cm, args):
		n.metrics.cmds[cm.id].errors.Inc()
		c.fail(wrongArity(cm.name))
	case !c.authed && !cm.noAuth:
		n.metrics.cmds[cm.id].errors.Inc()
		c.fail(errNoAuth)
	case !n.permitted(c, cm):
		n.metrics.cmds[cm.id].errors.Inc()
	case cm.write && n.refusesWrites(c) && !readOnlyExec(c, cm):
		n.metrics.cmds[cm.id].errors.Inc()
		c.fail(errReadOnly)
	default:
		if c.dirty && !cm.write && !n.backend.Visible() {
			// Read your own writes: what this pipeline wrote must be
			// readable before a read runs.
			n.syncDirty(c)
			if c.drop {
				c.quit = true
				return
			}
		}
		// Within a pipeline, a command starts when the one before it
		// ended: one clock read per command instead of two.
		start := c.clock
		if start == 0 {
			start = monotonic()
		}
		c.failed = false
		cm.run(n, c, args)
		c.clock = monotonic()
		took = c.clock - start
		c.tally.observe(&n.metrics.cmds[cm.id], &n.state().stats[cm.id], took, c.failed)
	}
	n.afterCommand(c, cm, args, took)
}

// wrongArgCount reports whether args has a number of arguments cm's arity
// does not allow (cm.arity > 0: exactly; < 0: at least -cm.arity).
func wrongArgCount(cm *command, args [][]byte) bool {
	return (cm.arity > 0 && len(args) != cm.arity) || (cm.arity < 0 && len(args) < -cm.arity)
}

// waitPause waits out a CLIENT PAUSE that covers cm, off the loop only
// (mayWait sends the commands a pause holds there), unless the pause check
// refuses cm at once: Redis checks the pause after the command's name,
// arity, authentication, permissions and the replica's READONLY
// (processCommand), so a request that is refused learns so at once, never
// after the pause. It reports whether it waited.
//
// The check is made once per command, and its verdict stays on c for run
// (c.verdict): mayWait's, on the loop, for the command it looked at, or this
// one's, off the loop, for the commands after it in the pipeline.
func (n *Node) waitPause(c *client, cm *command, args [][]byte) bool {
	p := &n.state().pause
	if c.verdict == pauseUnchecked && c.busy && p.on.Load() {
		c.verdict = n.pauseCheck(c, cm, args)
	}
	if c.verdict != pauseHolds || !c.busy {
		return false
	}
	return p.wait(cm)
}

// pauseCheck is the CLIENT PAUSE check's verdict on cm: refused at once by
// one of run's checks before it runs cm, which a pause does not change
// (the routing aside: misrouted, before the pause and after it), or held.
func (n *Node) pauseCheck(c *client, cm *command, args [][]byte) pauseVerdict {
	switch {
	case cm == nil, wrongArgCount(cm, args), !c.authed && !cm.noAuth:
		return pauseRefused
	case cm.admin && c.access != accessAdmin: // checkAdmin
		return pauseRefused
	case cm.write && !readOnlyExec(c, cm):
		if c.access < accessWrite {
			return pauseRefused
		}
		if n.backend.IsFollower() {
			return pauseReadOnly
		}
	}
	return pauseHolds
}

// refusesWrites reports whether c's write command is refused as a
// follower's (READONLY): the node follows, or the pause check found it
// following. The check's verdict holds even if the node was promoted
// since: the write was answered on the loop for being refused, and must
// not run there during the pause instead.
func (n *Node) refusesWrites(c *client) bool {
	return c.verdict == pauseReadOnly || n.backend.IsFollower()
}

// syncFailed drops the connection: its buffered replies may claim success
// for writes that are not durable, and must never reach the client.
func (n *Node) syncFailed(c *client, err error) {
	n.log.Error("sync failed; dropping the connection so no write is acknowledged", "err", err)
	c.drop = true
}

// loopSync is an event loop's group sync. A pipeline that wrote does not
// sync on its own: its client is held, and once the loop has served the
// connections that were ready with it, one Sync covers all their writes and
// their replies go out. This is Redis' beforeSleep, which writes the AOF
// once per event loop iteration before any reply. With appendfsync everysec
// the Sync is one write(2) to the commit log and runs on the loop; where it
// waits for an fsync or followers it runs on a goroutine, one at a time per
// loop, and the loop goes on serving: the clients that write meanwhile form
// the next group. It batches replies, not fsyncs: backend.Sync groups
// those, in the internal/groupsync Group of the log below (whose package
// doc says why loopSync is not one).
type loopSync struct {
	n         *Node
	el        gnet.EventLoop
	held      []*client // waiting for the next Sync
	spare     []*client // a list to reuse
	scheduled bool      // run is queued on the loop
	syncing   bool      // a goroutine runs a Sync
}

// loopSyncOf returns el's group sync.
func (n *Node) loopSyncOf(el gnet.EventLoop) *loopSync {
	n.connsMu.Lock()
	defer n.connsMu.Unlock()
	ls := n.loopSyncs[el]
	if ls == nil {
		ls = &loopSync{n: n, el: el}
		n.loopSyncs[el] = ls
	}
	return ls
}

// hold holds c until the loop's next group sync, and reports whether it
// did: if the loop cannot take the task, c syncs on its own.
func (ls *loopSync) hold(c *client) bool {
	if !ls.scheduled && !ls.syncing {
		if ls.el.Execute(context.Background(), gnet.RunnableFunc(ls.run)) != nil {
			return false
		}
		ls.scheduled = true
	}
	c.held = true
	ls.held = append(ls.held, c)
	return true
}

// run starts the group sync of the clients held so far. It runs on the
// loop.
func (ls *loopSync) run(context.Context) error {
	ls.scheduled = false
	if ls.syncing || len(ls.held) == 0 {
		return nil
	}
	group := ls.held
	ls.held = ls.spare[:0]
	if !ls.n.backend.SyncWaits() {
		ls.release(group, ls.n.backend.Sync())
		return nil
	}
	ls.syncing = true
	go func() {
		err := ls.n.backend.Sync()
		ls.n.settleReadGroup(group) // readindex.go
		if ls.el.Execute(context.Background(), gnet.RunnableFunc(func(ctx context.Context) error {
			ls.syncing = false
			ls.release(group, err)
			return ls.run(ctx) // the next group, held meanwhile
		})) != nil {
			ls.n.log.Error("event loop stopped during a group sync; its clients get no reply", "clients", len(group))
		}
	}()
	return nil
}

// release writes the replies of a synced group and serves what its clients
// sent meanwhile. It runs on the loop.
func (ls *loopSync) release(group []*client, err error) {
	n := ls.n
	if err != nil {
		n.log.Error("sync failed; dropping the connections so no write is acknowledged", "err", err, "connections", len(group))
	}
	for i, c := range group {
		group[i] = nil
		c.held = false
		if c.closed {
			continue
		}
		c.dirty = false
		c.drop = c.drop || err != nil
		a := n.writeReplies(c)
		if a == gnet.None && c.stall == stallNone && c.gc.InboundBuffered() > 0 && !n.closing.Load() {
			a = n.serve(c)
		}
		if a == gnet.None && n.noteInput(c) {
			a = gnet.Close
		}
		if a == gnet.Close {
			ls.el.Close(c.gc)
		}
	}
	ls.spare = group[:0]
}

// closeClients closes every client connection once its pipeline is done,
// and waits for them until ctx ends; then it cuts them.
func (n *Node) closeClients(ctx context.Context) {
	for _, c := range n.connList() {
		c.gc.Wake(nil) // between pipelines OnTraffic closes it; busy ones close after
	}
	drained := make(chan struct{})
	go func() { n.connsWG.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-ctx.Done():
		n.log.Warn("shutdown timed out; cutting busy connections")
		for _, c := range n.connList() {
			c.gc.Close()
		}
		n.connsMu.Lock()
		for c := range n.conns {
			delete(n.conns, c) // a loop stuck in a command would never run OnClose
			n.connsWG.Done()
		}
		n.connsMu.Unlock()
	}
}

// connList returns the open client connections that have an event loop.
func (n *Node) connList() []*client {
	n.connsMu.Lock()
	defer n.connsMu.Unlock()
	list := make([]*client, 0, len(n.conns))
	for c := range n.conns {
		if c.enrolled {
			list = append(list, c)
		}
	}
	return list
}

// gnetLogger sends gnet's log lines to the node's logger.
type gnetLogger struct{ n *Node }

var _ logging.Logger = gnetLogger{}

func (l gnetLogger) Debugf(format string, args ...any) {}
func (l gnetLogger) Infof(format string, args ...any)  {}
func (l gnetLogger) Warnf(format string, args ...any) {
	l.n.log.Warn("gnet: " + fmt.Sprintf(format, args...))
}
func (l gnetLogger) Errorf(format string, args ...any) {
	l.n.log.Error("gnet: " + fmt.Sprintf(format, args...))
}
func (l gnetLogger) Fatalf(format string, args ...any) {
	l.n.log.Error("gnet: " + fmt.Sprintf(format, args...))
}
