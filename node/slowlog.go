package node

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The slow log keeps the most recent commands that ran longer than
// slowlog-log-slower-than microseconds (0 logs every command, a negative
// value none), at most slowlog-max-len of them, as Redis does. A command's
// time is its run on the node, before the pipeline's sync and the reply's
// write, the same time logkv_command_duration_seconds measures.
//
// An entry keeps at most slowlogMaxArgs arguments of at most
// slowlogMaxArgLen bytes each, with Redis' "... (N more ...)" markers, so a
// slow 32 MiB SET costs the log a few hundred bytes, not 32 MiB.

const (
	slowlogMaxArgs   = 32
	slowlogMaxArgLen = 128
	// Defaults, Redis' own.
	defaultSlowlogSlowerThan = 10000 // microseconds
	defaultSlowlogMaxLen     = 128
	// maxSlowlogLen bounds slowlog-max-len, so CONFIG SET cannot make the
	// log hold more than about 100 MB.
	maxSlowlogLen = 1 << 16
)

// slowlog is the node's slow log.
type slowlog struct {
	slowerThan atomic.Int64 // microseconds; < 0 off
	maxLen     atomic.Int64

	mu      sync.Mutex
	nextID  int64
	entries []slowEntry // newest last
}

type slowEntry struct {
	id     int64
	at     int64 // unix seconds
	micros int64
	args   []string
	addr   string
	name   string
}

func (s *slowlog) init() {
	s.slowerThan.Store(defaultSlowlogSlowerThan)
	s.maxLen.Store(defaultSlowlogMaxLen)
}

// slow reports whether a command that took d belongs in the log.
func (s *slowlog) slow(d time.Duration) bool {
	t := s.slowerThan.Load()
	return t >= 0 && d.Microseconds() >= t
}

// add logs a command that took d.
func (s *slowlog) add(args [][]byte, d time.Duration, addr, name string) {
	e := slowEntry{at: time.Now().Unix(), micros: d.Microseconds(), addr: addr, name: name}
	n := min(len(args), slowlogMaxArgs)
	for i, a := range args[:n] {
		if i == slowlogMaxArgs-1 && len(args) > slowlogMaxArgs {
			e.args = append(e.args, fmt.Sprintf("... (%d more arguments)", len(args)-slowlogMaxArgs+1))
			break
		}
		if len(a) > slowlogMaxArgLen {
			e.args = append(e.args, fmt.Sprintf("%s... (%d more bytes)", a[:slowlogMaxArgLen], len(a)-slowlogMaxArgLen))
		} else {
			e.args = append(e.args, string(a))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e.id = s.nextID
	s.nextID++
	s.entries = append(s.entries, e)
	s.trim()
}

// trim drops the oldest entries past maxLen. Called with mu held.
func (s *slowlog) trim() {
	if over := len(s.entries) - int(s.maxLen.Load()); over > 0 {
		clear(s.entries[:over])
		s.entries = append(s.entries[:0], s.entries[over:]...)
	}
}

// cmdSlowlog: SLOWLOG GET [count] | LEN | RESET | HELP.
func cmdSlowlog(n *Node, c *client, args [][]byte) {
	s := &n.srv.slowlog
	sub, ok := subcommand(c, args)
	if !ok {
		return
	}
	switch sub {
	case "get":
		count := int64(10)
		if len(args) > 3 {
			c.fail(subcommandSyntax(args[1], "SLOWLOG"))
			return
		}
		if len(args) == 3 {
			// Redis answers a count that is not a number with the range
			// error too.
			v, err := strconv.ParseInt(string(args[2]), 10, 64)
			if err != nil || v < -1 {
				c.fail("ERR count should be greater than or equal to -1")
				return
			}
			count = v
		}
		s.mu.Lock()
		entries := s.entries
		if count >= 0 && int64(len(entries)) > count {
			entries = entries[int64(len(entries))-count:]
		}
		entries = append([]slowEntry(nil), entries...)
		s.mu.Unlock()
		c.conn.WriteArray(len(entries))
		for i := len(entries) - 1; i >= 0; i-- { // newest first
			e := &entries[i]
			c.conn.WriteArray(6)
			c.conn.WriteInt64(e.id)
			c.conn.WriteInt64(e.at)
			c.conn.WriteInt64(e.micros)
			c.conn.WriteArray(len(e.args))
			for _, a := range e.args {
				c.conn.WriteBulkString(a)
			}
			c.conn.WriteBulkString(e.addr)
			c.conn.WriteBulkString(e.name)
		}
	case "len":
		s.mu.Lock()
		l := len(s.entries)
		s.mu.Unlock()
		c.conn.WriteInt(l)
	case "reset":
		s.mu.Lock()
		s.entries = nil
		s.mu.Unlock()
		c.conn.WriteString("OK")
	case "help":
		writeHelp(c, "SLOWLOG",
			"GET [<count>]", "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
			"    Entries are made of:",
			"    id, timestamp, time in microseconds, arguments array, client IP and port,",
			"    client name",
			"LEN", "    Return the length of the slowlog.",
			"RESET", "    Reset the slowlog.")
	}
}

// writeHelp writes a HELP reply as Redis does: a title line, the lines, and
// HELP's own.
func writeHelp(c *client, cmd string, lines ...string) {
	c.conn.WriteArray(len(lines) + 3)
	c.conn.WriteString(cmd + " <subcommand> [<arg> [value] [opt] ...]. Subcommands are:")
	for _, l := range lines {
		c.conn.WriteString(l)
	}
	c.conn.WriteString("HELP")
	c.conn.WriteString("    Prints this help.")
}
