package node

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// clientExt is what CLIENT, HELLO, MONITOR and the reply modes keep per
// connection. A connection's own loop (or its goroutine while busy) is the
// only writer; CLIENT LIST and CLIENT KILL, run by other clients on other
// loops, read what they show through atomics or under mu.
type clientExt struct {
	// created, remote and local are set before the client is published.
	created       time.Time
	remote, local net.Addr
	proto         atomic.Int32 // 2, 3, or 0 for 2
	mu            sync.Mutex   // guards name, libName, libVer
	name          string
	libName       string
	libVer        string
	lastCmd       atomic.Pointer[command] // the last command run
	// lastSub is the last container command's subcommand ("client|list":
	// subcommandNames' string), for CLIENT LIST's cmd= as Redis 7 shows it.
	lastSub atomic.Pointer[string]
	active  atomic.Int64  // when it ran, by monotonic
	flags   atomic.Uint32 // flagMonitor, flagNoEvict, flagNoTouch
	killed  atomic.Bool   // CLIENT KILL closed it
	// reply is CLIENT REPLY's mode; mark is where the current command's
	// replies start in the output, so OFF and SKIP can drop them.
	reply replyMode
	mark  int
}

// Client flags CLIENT LIST shows.
const (
	flagMonitor uint32 = 1 << iota
	flagNoEvict
	flagNoTouch
)

// replyMode is CLIENT REPLY's state.
type replyMode uint8

const (
	replyOn replyMode = iota
	replyOff
	replySkipNext // CLIENT REPLY SKIP ran: the next command's replies go
	replySkipThis // the current command's replies go
)

// init records a new connection's addresses and birth.
func (x *clientExt) init(nc net.Conn) {
	x.created, x.remote, x.local = time.Now(), nc.RemoteAddr(), nc.LocalAddr()
}

func (x *clientExt) getName() string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.name
}

func (x *clientExt) setFlag(f uint32, on bool) {
	for {
		old := x.flags.Load()
		v := old &^ f
		if on {
			v |= f
		}
		if x.flags.CompareAndSwap(old, v) {
			return
		}
	}
}

// validClientAttr reports whether s may be a client name or library
// attribute: Redis allows the printable characters but space.
func validClientAttr(s []byte) bool {
	for _, b := range s {
		if b < '!' || b > '~' {
			return false
		}
	}
	return true
}

// cmdClient runs the CLIENT subcommands.
func cmdClient(n *Node, c *client, args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	c.noteSub("client", sub)
	arity := func(want int) bool { // want > 0 exactly, < 0 at least
		if (want > 0 && len(args) != want) || (want < 0 && len(args) < -want) {
			c.fail(wrongArity("client|" + sub))
			return false
		}
		return true
	}
	switch sub {
	case "id":
		if arity(2) {
			c.conn.WriteInt64(c.id)
		}
	case "getname":
		if !arity(2) {
			return
		}
		if name := c.x.getName(); name == "" {
			c.conn.WriteNull()
		} else {
			c.conn.WriteBulkString(name)
		}
	case "setname":
		if !arity(3) {
			return
		}
		if !validClientAttr(args[2]) {
			c.fail("ERR Client names cannot contain spaces, newlines or special characters.")
			return
		}
		c.x.mu.Lock()
		c.x.name = string(args[2])
		c.x.mu.Unlock()
		c.conn.WriteString("OK")
	case "setinfo":
		if !arity(4) {
			return
		}
		attr := strings.ToLower(string(args[2]))
		if attr != "lib-name" && attr != "lib-ver" {
			c.fail(fmt.Sprintf("ERR Unrecognized option '%.128s'", args[2]))
			return
		}
		if !validClientAttr(args[3]) {
			c.fail(fmt.Sprintf("ERR %s cannot contain spaces, newlines or special characters.", attr))
			return
		}
		c.x.mu.Lock()
		if attr == "lib-name" {
			c.x.libName = string(args[3])
		} else {
			c.x.libVer = string(args[3])
		}
		c.x.mu.Unlock()
		c.conn.WriteString("OK")
	case "info":
		if arity(2) {
			c.conn.WriteVerbatim(n.clientLine(c) + "\n")
		}
	case "list":
		n.clientList(c, args[2:])
	case "kill":
		if arity(-3) {
			n.clientKill(c, args[2:])
		}
	case "reply":
		if !arity(3) {
			return
		}
		switch strings.ToLower(string(args[2])) {
		case "on":
			c.x.reply = replyOn
			c.conn.WriteString("OK")
		case "off":
			c.x.reply = replyOff
		case "skip":
			if c.x.reply != replyOff {
				c.x.reply = replySkipNext
			}
		default:
			c.fail(errSyntax)
		}
	case "no-evict", "no-touch":
		if !arity(3) {
			return
		}
		f := flagNoEvict
		if sub == "no-touch" {
			f = flagNoTouch
		}
		switch strings.ToLower(string(args[2])) {
		case "on":
			c.x.setFlag(f, true)
		case "off":
			c.x.setFlag(f, false)
		default:
			c.fail(errSyntax)
			return
		}
		c.conn.WriteString("OK")
	case "pause":
		// Pausing stops every client: admin, as in Redis.
		if arity(-3) && n.checkAdmin(c) {
			n.clientPause(c, args[2:])
		}
	case "unpause":
		if arity(2) && n.checkAdmin(c) {
			n.srv.pause.end()
			c.conn.WriteString("OK")
		}
	case "getredir":
		if arity(2) {
			c.conn.WriteInt(-1) // no tracking
		}
	case "unblock":
		if !arity(-3) {
			return
		}
		// No command blocks a client here (WAIT waits off the loop and
		// cannot be interrupted), so no client is unblocked.
		if _, err := strconv.ParseInt(string(args[2]), 10, 64); err != nil {
			c.fail(errNotInteger)
			return
		}
		if len(args) == 4 {
			if m := strings.ToLower(string(args[3])); m != "timeout" && m != "error" {
				c.fail("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
				return
			}
		} else if len(args) > 4 {
			c.fail(subcommandSyntax(args[1], "CLIENT"))
			return
		}
		c.conn.WriteInt(0)
	case "help":
		lines := []string{
			"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GETNAME", "    Return the name of the current connection.",
			"ID", "    Return the ID of the current connection.",
			"INFO", "    Return information about the current client connection.",
			"KILL <ip:port>", "    Kill connection made from <ip:port>.",
			"KILL <option> <value> [<option> <value> [...]]", "    Kill connections. Options are: ID, ADDR, LADDR, USER, SKIPME (yes|no), TYPE (normal|master|replica|pubsub), MAXAGE.",
			"LIST [options ...]", "    Return information about client connections. Options: TYPE (normal|master|replica|pubsub), ID <id> [...].",
			"UNPAUSE", "    Stop the current client pause, resuming traffic.",
			"PAUSE <timeout> [WRITE|ALL]", "    Suspend all, or just write, clients for <timeout> milliseconds.",
			"REPLY (ON|OFF|SKIP)", "    Control the replies sent to the current connection.",
			"SETNAME <name>", "    Assign the name <name> to the current connection.",
			"SETINFO <LIB-NAME|LIB-VER> <value>", "    Set the client library name or version.",
			"NO-EVICT (ON|OFF)", "    Accepted for compatibility: logkv never evicts.",
			"NO-TOUCH (ON|OFF)", "    Accepted for compatibility: logkv keeps no access times.",
			"HELP", "    Print this help.",
		}
		c.conn.WriteArray(len(lines))
		for _, l := range lines {
			c.conn.WriteString(l)
		}
	default:
		c.fail(fmt.Sprintf("ERR unknown subcommand '%.128s'. Try CLIENT HELP.", args[1]))
	}
}

// clientLine is c's line in CLIENT LIST and CLIENT INFO, in Redis 7.2's
// fields. What logkv does not track (buffer sizes, memory) reads 0: the
// fields are there so that parsers find them.
func (n *Node) clientLine(c *client) string {
	now := monotonic()
	age := int64(time.Since(c.x.created).Seconds())
	idle := age
	if a := c.x.active.Load(); a != 0 {
		idle = int64((now - time.Duration(a)).Seconds())
	}
	flags := ""
	f := c.x.flags.Load()
	if f&flagMonitor != 0 {
		flags += "O"
	}
	if f&flagNoEvict != 0 {
		flags += "e"
	}
	if f&flagNoTouch != 0 {
		flags += "T"
	}
	if flags == "" {
		flags = "N"
	}
	cmd := "NULL"
	if cm := c.x.lastCmd.Load(); cm != nil {
		cmd = cm.name
		// A container's subcommand, if it is this command's; an unknown
		// one shows NULL, as in Redis.
		switch s := c.x.lastSub.Load(); {
		case s == nil || len(subcommands[cm.name]) == 0:
		case s == &unknownSub:
			cmd = unknownSub
		case len(*s) > len(cm.name) && (*s)[len(cm.name)] == '|' && (*s)[:len(cm.name)] == cm.name:
			cmd = *s
		}
	}
	proto := c.x.proto.Load()
	if proto == 0 {
		proto = 2
	}
	c.x.mu.Lock()
	name, lib, ver := c.x.name, c.x.libName, c.x.libVer
	c.x.mu.Unlock()
	return fmt.Sprintf("id=%d addr=%s laddr=%s fd=0 name=%s age=%d idle=%d flags=%s db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=%s user=default redir=-1 resp=%d lib-name=%s lib-ver=%s",
		c.id, addrString(c.x.remote), addrString(c.x.local), name, age, idle, flags, cmd, proto, lib, ver)
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// clientList: CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id ...].
func (n *Node) clientList(c *client, args [][]byte) {
	var ids map[int64]bool
	typ := ""
	for i := 0; i < len(args); i++ {
		switch opt := strings.ToLower(string(args[i])); {
		case opt == "type" && i+1 < len(args):
			typ = strings.ToLower(string(args[i+1]))
			switch typ {
			case "normal", "master", "replica", "slave", "pubsub":
			default:
				c.fail(fmt.Sprintf("ERR Unknown client type '%.128s'", args[i+1]))
				return
			}
			i++
		case opt == "id" && i+1 < len(args):
			ids = map[int64]bool{}
			for i++; i < len(args); i++ {
				id, err := strconv.ParseInt(string(args[i]), 10, 64)
				if err != nil {
					c.fail("ERR Invalid client ID")
					return
				}
				ids[id] = true
			}
		default:
			c.fail(errSyntax)
			return
		}
	}
	var b strings.Builder
	if typ == "" || typ == "normal" {
		for _, o := range n.clientsByID() {
			if ids == nil || ids[o.id] {
				b.WriteString(n.clientLine(o))
				b.WriteByte('\n')
			}
		}
	}
	c.conn.WriteVerbatim(b.String())
}

// clientsByID returns the open clients in id order, the order Redis lists
// them in.
func (n *Node) clientsByID() []*client {
	n.connsMu.Lock()
	list := make([]*client, 0, len(n.conns))
	for o := range n.conns {
		list = append(list, o)
	}
	n.connsMu.Unlock()
	sortClients(list)
	return list
}

func sortClients(list []*client) {
	for i := 1; i < len(list); i++ {
		for j := i; j > 0 && list[j].id < list[j-1].id; j-- {
			list[j], list[j-1] = list[j-1], list[j]
		}
	}
}

// clientKill: CLIENT KILL ip:port (the old form, OK or an error), or
// CLIENT KILL filter value [filter value ...] (a count).
func (n *Node) clientKill(c *client, args [][]byte) {
	if !n.checkAdmin(c) {
		return
	}
	if len(args) == 1 {
		for _, o := range n.clientsByID() {
			if addrString(o.x.remote) == string(args[0]) {
				n.kill(c, o)
				c.conn.WriteString("OK")
				return
			}
		}
		c.fail("ERR No such client")
		return
	}
	if len(args)%2 != 0 {
		c.fail(errSyntax)
		return
	}
	var (
		id            int64
		addr, laddr   string
		typ           string
		skipme        = true
		maxAge        int64
		haveID, haveT bool
	)
	for i := 0; i < len(args); i += 2 {
		v := string(args[i+1])
		switch strings.ToLower(string(args[i])) {
		case "id":
			x, err := strconv.ParseInt(v, 10, 64)
			if err != nil || x <= 0 {
				c.fail("ERR client-id should be greater than 0")
				return
			}
			id, haveID = x, true
		case "addr":
			addr = v
		case "laddr":
			laddr = v
		case "user":
			if v != "default" {
				c.fail(fmt.Sprintf("ERR No such user '%.128s'", v))
				return
			}
		case "type":
			typ = strings.ToLower(v)
			switch typ {
			case "normal", "master", "replica", "slave", "pubsub":
			default:
				c.fail(fmt.Sprintf("ERR Unknown client type '%.128s'", v))
				return
			}
			haveT = true
		case "skipme":
			switch strings.ToLower(v) {
			case "yes":
				skipme = true
			case "no":
				skipme = false
			default:
				c.fail(errSyntax)
				return
			}
		case "maxage":
			x, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				c.fail(errSyntax)
				return
			}
			maxAge = x
		default:
			c.fail(errSyntax)
			return
		}
	}
	killed := 0
	for _, o := range n.clientsByID() {
		switch {
		case haveID && o.id != id,
			addr != "" && addrString(o.x.remote) != addr,
			laddr != "" && addrString(o.x.local) != laddr,
			haveT && typ != "normal",
			maxAge > 0 && time.Since(o.x.created) < time.Duration(maxAge)*time.Second,
			skipme && o == c:
			continue
		}
		n.kill(c, o)
		killed++
	}
	c.conn.WriteInt(killed)
}

// kill closes o; c, the killer, if it kills itself, gets its reply first.
func (n *Node) kill(c, o *client) {
	o.x.killed.Store(true)
	if o == c {
		c.quit = true
		return
	}
	if o.gc != nil {
		o.gc.Close() // concurrency-safe: runs on o's loop
	}
}

// clientPause: CLIENT PAUSE timeout [WRITE|ALL].
func (n *Node) clientPause(c *client, args [][]byte) {
	ms, err := strconv.ParseInt(string(args[0]), 10, 64)
	if err != nil {
		c.fail("ERR timeout is not an integer or out of range")
		return
	}
	if ms < 0 {
		c.fail("ERR timeout is negative")
		return
	}
	all := true
	if len(args) == 2 {
		switch strings.ToLower(string(args[1])) {
		case "write":
			all = false
		case "all":
		default:
			c.fail("ERR CLIENT PAUSE mode must be WRITE or ALL")
			return
		}
	} else if len(args) > 2 {
		c.fail(subcommandSyntax([]byte("pause"), "CLIENT"))
		return
	}
	n.srv.pause.start(time.Duration(min(ms, maxPauseMillis))*time.Millisecond, all)
	c.conn.WriteString("OK")
}

// maxPauseMillis bounds a pause (about 24 days) so its deadline cannot
// overflow.
const maxPauseMillis = 1<<31 - 1

// subcommandSyntax is Redis' reply to a subcommand with the wrong arguments.
func subcommandSyntax(sub []byte, cmd string) string {
	return fmt.Sprintf("ERR unknown subcommand or wrong number of arguments for '%.128s'. Try %s HELP.", sub, cmd)
}

// pauseState is CLIENT PAUSE's: while it lasts, the commands it covers wait
// off their event loop (mayWait sends them there) until it ends.
type pauseState struct {
	mu    sync.Mutex
	until time.Time
	all   bool          // ALL, not just WRITE
	ended chan struct{} // closed when the pause ends early
	on    atomic.Bool   // a pause may be running: the fast check
	// waiting counts the clients whose command waits for the pause: INFO's
	// blocked_clients, as Redis counts a paused client as blocked.
	waiting atomic.Int64
}

func (p *pauseState) start(d time.Duration, all bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	until := time.Now().Add(d)
	// As Redis: a new pause never shortens one in force, nor narrows it.
	if p.on.Load() && time.Now().Before(p.until) {
		all = all || p.all
		if p.until.After(until) {
			until = p.until
		}
	}
	p.until, p.all = until, all
	if p.ended == nil {
		p.ended = make(chan struct{})
	}
	p.on.Store(true)
}

func (p *pauseState) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended != nil {
		close(p.ended)
		p.ended = nil
	}
	p.on.Store(false)
}

// pauses reports whether cm must wait for the pause: all commands under
// ALL, writes under WRITE. Commands that end a pause or only read the
// server's state (CLIENT, PING, INFO...) never wait, as in Redis.
func (p *pauseState) pauses(cm *command) bool {
	if !p.on.Load() || cm == nil || cm.name == "client" || cm.name == "quit" {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !time.Now().Before(p.until) {
		p.on.Store(false)
		return false
	}
	return cm.write || p.all
}

// wait blocks until the pause no longer covers cm, and reports whether it
// waited.
func (p *pauseState) wait(cm *command) (waited bool) {
	for p.pauses(cm) {
		p.mu.Lock()
		ch, d := p.ended, time.Until(p.until)
		p.mu.Unlock()
		if ch == nil {
			return waited
		}
		waited = true
		t := time.NewTimer(d)
		p.waiting.Add(1)
		select {
		case <-ch:
		case <-t.C:
		}
		p.waiting.Add(-1)
		t.Stop()
	}
	return waited
}

// pauseVerdict is the CLIENT PAUSE check's decision on one command
// (Node.pauseCheck). Redis makes it in one place (processCommand): a
// command refused there is answered at once, one the pause covers waits.
// Here the check runs before the command (mayWait, on the loop, which
// sends a held command off it) and run's refusals come later, so the
// verdict is made once and kept on the client until run is done with the
// command: were run to look at the role again, a write found on a
// follower, and so answered on the loop, would run there during the pause
// if a promotion came in between.
type pauseVerdict uint8

const (
	pauseUnchecked pauseVerdict = iota // no pause was in force when checked, or not checked yet
	pauseHolds                         // the pause holds the command until it ends
	pauseRefused                       // refused at once, as run refuses it
	pauseReadOnly                      // a write on a follower: READONLY at once, whatever the role by run
)
