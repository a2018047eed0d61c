package node

import (
	"cmp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// MONITOR streams every command the node runs to the clients that asked,
// one line each, as Redis writes them:
//
//	+<unix seconds>.<microseconds> [<db> <client addr>] "<arg>" "<arg>" ...\r\n
//
// with each argument quoted and escaped as Redis' sdscatrepr does. Admin
// commands are not shown, and the arguments of AUTH, HELLO and CONFIG are
// replaced by "(redacted)", so a password never reaches a monitor.
//
// A monitor's lines go to its connection through gnet's AsyncWrite, which
// runs on the monitor's own event loop. A monitor that reads slower than the
// node runs commands would make that output grow without bound, so a
// monitor is held to client_output_buffer_limit's normal class, as Redis
// holds it (a monitor is a normal client there): its pending output, the
// lines queued for AsyncWrite plus what gnet has not sent, may not pass the
// hard limit, nor stay over the soft limit for soft_seconds; past either,
// the monitor is disconnected and its output freed, counted in
// logkv_clients_closed_total as any client's. A line that would pass the
// hard limit is not queued, so a monitor holds at most hard bytes of lines.

// monitors are a node's MONITOR clients.
type monitors struct {
	count atomic.Int32 // len(list): the fast check on every command
	mu    sync.Mutex
	list  map[*client]*monitorOut
	// n is the node, for its output limits (read at every line, so CONFIG
	// SET client-output-buffer-limit applies at once) and metrics; set by
	// the first MONITOR.
	n *Node
}

// monitorOut is one monitor's queue accounting.
type monitorOut struct {
	queued atomic.Int64 // bytes handed to AsyncWrite, not yet in gnet's buffer
	unsent atomic.Int64 // gnet's unsent output after the last line reached it
	gone   atomic.Bool
	// softSince is when the pending output went over the soft limit (0:
	// it is not); guarded by monitors.mu.
	softSince time.Duration
}

// cmdMonitor: MONITOR. The client gets +OK, then the stream.
func cmdMonitor(n *Node, c *client, args [][]byte) {
	m := &n.state().monitors
	c.conn.WriteString("OK")
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.list == nil {
		m.list = map[*client]*monitorOut{}
		m.n = n
	}
	if _, ok := m.list[c]; !ok {
		m.list[c] = &monitorOut{}
		m.count.Add(1)
		c.x.setFlag(flagMonitor, true)
	}
}

// remove stops c monitoring, if it did.
func (m *monitors) remove(c *client) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.list[c]; ok {
		o.gone.Store(true)
		delete(m.list, c)
		m.count.Add(-1)
		c.x.setFlag(flagMonitor, false)
	}
}

// feed sends the line of a command c ran to every monitor.
func (m *monitors) feed(c *client, cm *command, args [][]byte) {
	now := time.Now()
	line := make([]byte, 0, 64)
	line = append(line, '+')
	line = strconv.AppendInt(line, now.Unix(), 10)
	line = append(line, '.')
	us := now.Nanosecond() / 1000
	line = append(line, "000000"[len(strconv.Itoa(us)):]...)
	line = strconv.AppendInt(line, int64(us), 10)
	line = append(line, " [0 "...)
	line = append(line, addrString(c.x.remote)...)
	line = append(line, ']')
	for i, a := range args {
		line = append(line, ' ')
		if i > 0 && secret(cm) {
			line = append(line, `"(redacted)"`...)
			continue
		}
		line = appendRepr(line, a)
	}
	line = append(line, "\r\n"...)

	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.n.settings()
	hard, soft := int64(s.hard), int64(s.soft)
	size := int64(len(line))
	var mono time.Duration // read once, if a monitor is over soft
	for mc, o := range m.list {
		if mc.x.killed.Load() {
			m.dropLocked(mc, o, false)
			continue
		}
		pending := o.queued.Load() + o.unsent.Load() + size
		if pending > hard {
			m.n.closeFor(mc, closedOutputHard, "monitor output over its hard limit; closing", "unsent", pending-size, "hard", hard)
			m.dropLocked(mc, o, true)
			continue
		}
		switch {
		case pending <= soft:
			o.softSince = 0
		case o.softSince == 0:
			mono = cmp.Or(mono, monotonic())
			o.softSince = mono
		default:
			mono = cmp.Or(mono, monotonic())
			if mono-o.softSince > s.softFor {
				m.n.closeFor(mc, closedOutputSoft, "monitor output over its soft limit for soft_seconds; closing", "unsent", pending-size, "soft", soft)
				m.dropLocked(mc, o, true)
				continue
			}
		}
		o.queued.Add(size)
		err := mc.gc.AsyncWrite(line, func(gc gnet.Conn, err error) error {
			o.queued.Add(-size)
			// On the monitor's loop: what gnet holds unsent is known
			// here, and counts against the limits at the next line.
			unsent := gc.OutboundBuffered()
			o.unsent.Store(int64(unsent))
			if err != nil || unsent > m.n.settings().hard {
				if !o.gone.Load() {
					m.remove(mc)
					gc.Close()
				}
			}
			return nil
		})
		if err != nil {
			m.dropLocked(mc, o, false)
		}
	}
}

// dropLocked stops mc monitoring, closing its connection if close is set.
// Called with mu held.
func (m *monitors) dropLocked(mc *client, o *monitorOut, close bool) {
	o.gone.Store(true)
	delete(m.list, mc)
	m.count.Add(-1)
	if close && mc.gc != nil {
		mc.gc.Close()
	}
}

// appendRepr appends s quoted and escaped as Redis' sdscatrepr does.
func appendRepr(out, s []byte) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for _, b := range s {
		switch b {
		case '\\', '"':
			out = append(out, '\\', b)
		case '\n':
			out = append(out, '\\', 'n')
		case '\r':
			out = append(out, '\\', 'r')
		case '\t':
			out = append(out, '\\', 't')
		case '\a':
			out = append(out, '\\', 'a')
		case '\b':
			out = append(out, '\\', 'b')
		default:
			if b >= 0x20 && b < 0x7f {
				out = append(out, b)
			} else {
				out = append(out, '\\', 'x', hex[b>>4], hex[b&15])
			}
		}
	}
	return append(out, '"')
}
