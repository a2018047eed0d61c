package node

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server and introspection commands (TIME, SHUTDOWN, SAVE, BGSAVE,
// LASTSAVE, RESET) and the per-command bookkeeping behind INFO
// commandstats and errorstats, SLOWLOG, LATENCY, MONITOR, CLIENT PAUSE and
// CLIENT REPLY. run (server.go) calls beforeCommand and afterCommand around
// every command; both are a few atomic loads when none of these features is
// in use.

// serverState is a node's state for these commands. Its zero value is
// ready once init has run (lazily, on first use).
type serverState struct {
	once     sync.Once
	lastSave atomic.Int64 // unix seconds of the last SAVE; the start before
	saving   atomic.Bool  // a BGSAVE runs
	stopping atomic.Bool  // a SHUTDOWN runs
	stats    []cmdStats   // by command id
	errMu    sync.Mutex
	errs     map[string]int64 // error replies by prefix (ERR, WRONGTYPE...)
	slowlog  slowlog
	latency  latencyMonitor
	monitors monitors
	pause    pauseState
	// configMu serializes CONFIG SET and REWRITE; configChanged has bit i
	// set once CONFIG SET changed configParams[i] (cmd_config.go).
	configMu      sync.Mutex
	configChanged uint64
	// expire is the active expirer's counters (expire.go).
	expire expireStats
	// hits and misses are INFO's keyspace_hits and keyspace_misses: GETs
	// that found their key and that did not (publishTally adds each
	// pipeline's when it ends).
	hits, misses atomic.Int64
	// appendFsync is the appendfsync CONFIG SET switched to, nil if none
	// (cmd_config.go).
	appendFsync atomic.Pointer[string]
}

// cmdStats are INFO commandstats' counters of one command.
type cmdStats struct {
	calls, micros, failed, rejected atomic.Int64
}

// state returns the node's serverState, initialized.
func (n *Node) state() *serverState {
	s := &n.srv
	s.once.Do(func() {
		s.lastSave.Store(n.started.Unix())
		s.stats = make([]cmdStats, len(commandList))
		s.errs = map[string]int64{}
		s.slowlog.init()
		s.slowlog.slowerThan.Store(n.cfg.SlowlogLogSlowerThan)
		s.slowlog.maxLen.Store(n.cfg.SlowlogMaxLen)
		s.latency.threshold.Store(n.cfg.LatencyMonitorThreshold)
	})
	return s
}

// beforeCommand runs before each command: it marks where the command's
// replies start. (run waits out a CLIENT PAUSE after it: waitPause.)
func (n *Node) beforeCommand(c *client, cm *command) {
	c.x.lastCmd.Store(cm)
	c.x.mark = len(c.conn.out)
	if c.x.reply != replyOn {
		n.submitRun(c) // the replies owed before, which it must not drop
		c.x.mark = len(c.conn.out)
		if c.x.reply == replySkipNext {
			c.x.reply = replySkipThis
		}
	}
}

// afterCommand runs after each command, ran or rejected (took < 0): it
// counts it, logs it if slow, feeds it to monitors and drops its replies
// under CLIENT REPLY OFF or SKIP.
func (n *Node) afterCommand(c *client, cm *command, args [][]byte, took time.Duration) {
	s := n.state()
	c.x.active.Store(int64(c.clock))
	failed := c.failed || took < 0
	// A command that ran is counted in c.tally (run), published when the
	// pipeline ends, before INFO runs, or when another command runs.
	if cm != nil && took < 0 {
		s.stats[cm.id].rejected.Add(1)
	}
	if failed {
		c.conn.checkLimits()
		s.countError(c.conn.out[min(c.x.mark, len(c.conn.out)):])
	}
	if took >= 0 {
		// EXEC is not logged: the commands it ran are (afterQueued).
		if s.slowlog.slow(took) && !secret(cm) && cm != execCommand {
			s.slowlog.add(args, took, addrString(c.x.remote), c.x.getName())
		}
		s.latency.observe(took)
		if s.monitors.count.Load() > 0 && !cm.admin {
			s.monitors.feed(c, cm, args)
		}
	}
	switch c.x.reply {
	case replyOff, replySkipThis:
		n.submitRun(c) // a queued SET's OK, too
		c.conn.out = c.conn.out[:min(c.x.mark, len(c.conn.out))]
		if c.x.reply == replySkipThis {
			c.x.reply = replyOn
		}
	}
}

// afterQueued is afterCommand for a command EXEC ran: it counts it, logs
// it if slow and feeds it to monitors. Its replies are part of EXEC's, so
// CLIENT REPLY applies to EXEC as a whole, not here.
func (n *Node) afterQueued(c *client, cm *command, args [][]byte, took time.Duration) {
	s := n.state()
	st := &s.stats[cm.id]
	st.calls.Add(1)
	st.micros.Add(took.Microseconds())
	if c.failed {
		st.failed.Add(1)
		c.conn.checkLimits()
		s.countError(c.conn.out[min(c.x.mark, len(c.conn.out)):])
	}
	if s.slowlog.slow(took) && !secret(cm) {
		s.slowlog.add(args, took, addrString(c.x.remote), c.x.getName())
	}
	if s.monitors.count.Load() > 0 && !cm.admin {
		s.monitors.feed(c, cm, args)
	}
}

// secret reports whether cm's arguments may hold a password, so they stay
// out of the slow log and MONITOR (Redis redacts them too).
func secret(cm *command) bool {
	return cm.name == "auth" || cm.name == "hello" || cm.name == "config"
}

// countError counts the first error reply in out by its prefix, for INFO
// errorstats.
func (s *serverState) countError(out []byte) {
	i := 0
	for i < len(out) && out[i] != '-' {
		j := strings.Index(string(out[i:]), "\r\n")
		if j < 0 {
			return
		}
		i += j + 2
	}
	if i >= len(out) {
		return
	}
	msg := out[i+1:]
	end := 0
	for end < len(msg) && end < 64 && msg[end] != ' ' && msg[end] != '\r' {
		end++
	}
	s.errMu.Lock()
	defer s.errMu.Unlock()
	code := string(msg[:end])
	if _, ok := s.errs[code]; !ok && len(s.errs) >= maxErrorCodes {
		code = "ERRORSTATS_OVERFLOW" // bounded, whatever errors come
	}
	s.errs[code]++
}

// maxErrorCodes bounds the error prefixes INFO errorstats counts, as
// Redis' 128.
const maxErrorCodes = 128

// subcommand checks args[1] against the subcommands of the container
// command args[0] (subcommands, with Redis' arities) and returns it lower
// case, or fails the command as Redis does.
func subcommand(c *client, args [][]byte) (string, bool) {
	name := strings.ToLower(string(args[0]))
	sub := strings.ToLower(string(args[1]))
	arity, ok := subcommands[name][sub]
	c.noteSub(name, sub)
	if !ok {
		c.fail(fmt.Sprintf("ERR unknown subcommand '%.128s'. Try %s HELP.", args[1], strings.ToUpper(name)))
		return "", false
	}
	if (arity > 0 && len(args) != arity) || (arity < 0 && len(args) < -arity) {
		c.fail(wrongArity(name + "|" + sub))
		return "", false
	}
	return sub, true
}

// subcommandNames interns "container|sub" for every subcommand in
// subcommands, so that noting one allocates nothing.
var subcommandNames = func() map[string]map[string]*string {
	m := map[string]map[string]*string{}
	for container, subs := range subcommands {
		m[container] = map[string]*string{}
		for sub := range subs {
			full := container + "|" + sub
			m[container][sub] = &full
		}
	}
	return m
}()

// unknownSub is noted for a subcommand the container does not have: Redis
// shows such a command as cmd=NULL.
var unknownSub = "NULL"

// noteSub records that c runs container's subcommand sub, for CLIENT
// LIST's cmd= (Redis 7 shows "client|list").
func (c *client) noteSub(container, sub string) {
	p := subcommandNames[container][sub]
	if p == nil {
		p = &unknownSub
	}
	c.x.lastSub.Store(p)
}

// subcommands are the container commands' subcommands with their arities,
// as Redis 7 declares them (the arity counts the command and subcommand).
var subcommands = map[string]map[string]int{
	"client": {"caching": 3, "getname": 2, "getredir": 2, "help": 2, "id": 2, "info": 2, "kill": -3,
		"list": -2, "no-evict": 3, "no-touch": 3, "pause": -3, "reply": 3, "setinfo": 4, "setname": 3,
		"tracking": -3, "trackinginfo": 2, "unblock": -3, "unpause": 2},
	"config":  {"get": -3, "set": -4, "resetstat": 2, "rewrite": 2, "help": 2},
	"command": {"count": 2, "docs": -2, "getkeys": -4, "getkeysandflags": -4, "help": 2, "info": -2, "list": -2},
	"slowlog": {"get": -2, "len": 2, "reset": 2, "help": 2},
	"latency": {"doctor": 2, "graph": 3, "help": 2, "histogram": -2, "history": 3, "latest": 2, "reset": -2},
	"object":  {"encoding": 3, "freq": 3, "help": 2, "idletime": 3, "refcount": 3},
}

// cmdTime: TIME, the server's clock as [seconds, microseconds].
func cmdTime(n *Node, c *client, args [][]byte) {
	now := time.Now()
	c.conn.WriteArray(2)
	c.conn.WriteBulkString(fmt.Sprint(now.Unix()))
	c.conn.WriteBulkString(fmt.Sprint(now.Nanosecond() / 1000))
}

// cmdShutdown: SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]. The node stops
// as on SIGTERM: it stops accepting, lets every connection finish its
// pipeline (replies included), syncs and closes the engine. Every
// acknowledged write is already durable, so NOSAVE loses nothing either, and
// NOW and FORCE change nothing. The client gets no reply: its connection
// closes, as with Redis.
func cmdShutdown(n *Node, c *client, args [][]byte) {
	var save, nosave, abort, other bool
	for _, a := range args[1:] {
		switch strings.ToLower(string(a)) {
		case "save":
			save = true
		case "nosave":
			nosave = true
		case "now", "force":
			other = true
		case "abort":
			abort = true
		default:
			c.fail(errSyntax)
			return
		}
	}
	if (save && nosave) || (abort && (save || nosave || other)) {
		c.fail(errSyntax)
		return
	}
	s := n.state()
	if abort {
		// A shutdown here does not wait for replicas, so there is never
		// one to abort by the time another command runs.
		c.fail("ERR No shutdown in progress.")
		return
	}
	if !s.stopping.CompareAndSwap(false, true) {
		c.fail("ERR Errors trying to SHUTDOWN. Check logs.")
		return
	}
	n.log.Info("SHUTDOWN by a client", "client", c.id, "addr", addrString(c.x.remote))
	c.quit = true // no reply; the connection closes with the pipeline
	// Off the loop: Shutdown waits for every connection, this one included.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n.cfg.ShutdownTimeout))
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			n.log.Error("SHUTDOWN failed", "err", err)
		}
	}()
}

// cmdSave: SAVE makes every write durable, in the commit log and in the
// engine's own files (a checkpoint), before it answers.
func cmdSave(n *Node, c *client, args [][]byte) {
	if err := n.save(); err != nil {
		n.replyErr(c, err)
		return
	}
	c.conn.WriteString("OK")
}

// save syncs the backend and the engine and records the time for LASTSAVE.
func (n *Node) save() error {
	if err := n.backend.Sync(); err != nil {
		return err
	}
	if err := n.eng().Sync(); err != nil {
		return err
	}
	n.state().lastSave.Store(time.Now().Unix())
	return nil
}

// cmdBgsave: BGSAVE [SCHEDULE] runs SAVE's work on a goroutine.
func cmdBgsave(n *Node, c *client, args [][]byte) {
	if len(args) > 2 || (len(args) == 2 && !strings.EqualFold(string(args[1]), "schedule")) {
		c.fail(errSyntax)
		return
	}
	s := n.state()
	if !s.saving.CompareAndSwap(false, true) {
		if len(args) == 2 {
			c.conn.WriteString("Background saving scheduled")
			return
		}
		c.fail("ERR Background save already in progress")
		return
	}
	go func() {
		defer s.saving.Store(false)
		if err := n.save(); err != nil {
			n.log.Error("BGSAVE failed", "err", err)
		}
	}()
	c.conn.WriteString("Background saving started")
}

// cmdLastsave: LASTSAVE, the unix time of the last successful SAVE or
// BGSAVE (the node's start before one).
func cmdLastsave(n *Node, c *client, args [][]byte) {
	c.conn.WriteInt64(n.state().lastSave.Load())
}

// cmdReset: RESET puts the connection back as it was when it connected:
// RESP2, no name, replies on, no monitor, no MULTI or WATCH, database 0,
// and not authenticated if the node has a password.
func cmdReset(n *Node, c *client, args [][]byte) {
	n.state().monitors.remove(c)
	c.x.proto.Store(0)
	c.x.mu.Lock()
	c.x.name = ""
	c.x.mu.Unlock()
	c.x.flags.Store(0)
	c.x.reply = replyOn
	c.user, c.access = nil, n.settings().startAccess()
	c.authed = c.access != accessNone
	c.ks.multi = nil // RESET runs at once inside MULTI (multi.go): it ends it
	n.unwatchAll(c)
	c.ks.db = 0
	c.conn.WriteString("RESET")
}

func init() {
	for _, c := range []*command{
		{name: "time", arity: 1, run: cmdTime},
		{name: "lastsave", arity: 1, run: cmdLastsave},
		// SAVE waits for an fsync: off the event loop.
		{name: "save", arity: 1, slow: true, run: cmdSave},
		{name: "bgsave", arity: -1, run: cmdBgsave},
		{name: "shutdown", arity: -1, admin: true, run: cmdShutdown},
		{name: "reset", arity: 1, noAuth: true, run: cmdReset},
		{name: "slowlog", arity: -2, run: cmdSlowlog},
		{name: "latency", arity: -2, run: cmdLatency},
		// MONITOR shows every client's data: admin, as in Redis.
		{name: "monitor", arity: 1, admin: true, run: cmdMonitor},
	} {
		register(c)
	}
}

// cmdRole: ROLE, formatted from the backend's replicationView as Redis 7
// replies: a master's offset and replicas (id, an empty ip, and the offset
// each holds durably, as a string), or a replica's master host and port,
// link state and offset.
func cmdRole(n *Node, c *client, args [][]byte) {
	v := n.backend.Replication()
	w := c.conn
	if v.master {
		w.WriteArray(3)
		w.WriteBulkString("master")
		w.WriteInt64(int64(v.lastSeq))
		w.WriteArray(len(v.followers))
		for _, f := range v.followers {
			w.WriteArray(3)
			w.WriteBulkString(f.ID)
			w.WriteBulkString("")
			w.WriteBulkString(strconv.FormatUint(f.Durable, 10))
		}
		return
	}
	var applied uint64
	if v.log != nil {
		applied = v.log.Applied
	}
	w.WriteArray(5)
	w.WriteBulkString("slave")
	w.WriteBulkString(v.masterHost)
	w.WriteInt64(int64(v.masterPort))
	w.WriteBulkString(v.linkState)
	w.WriteInt64(int64(applied))
}
