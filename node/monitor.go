package node

import (
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
// node runs commands would make that output grow without bound, so each
// monitor may have at most monitorMaxPending bytes queued or unsent; past
// that it is disconnected, as Redis disconnects a client over its output
// buffer limit.

// monitorMaxPending bounds what one monitor may have queued and unsent.
const monitorMaxPending = 32 << 20

// monitors are a node's MONITOR clients.
type monitors struct {
	count atomic.Int32 // len(list): the fast check on every command
	mu    sync.Mutex
	list  map[*client]*monitorOut
}

// monitorOut is one monitor's queue accounting.
type monitorOut struct {
	queued atomic.Int64 // bytes handed to AsyncWrite, not yet in gnet's buffer
	gone   atomic.Bool
}

// cmdMonitor: MONITOR. The client gets +OK, then the stream.
func cmdMonitor(n *Node, c *client, args [][]byte) {
	m := &n.state().monitors
	c.conn.WriteString("OK")
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.list == nil {
		m.list = map[*client]*monitorOut{}
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
	for mc, o := range m.list {
		if mc.x.killed.Load() {
			m.dropLocked(mc, o, false)
			continue
		}
		if o.queued.Load()+int64(len(line)) > monitorMaxPending {
			m.dropLocked(mc, o, true)
			continue
		}
		o.queued.Add(int64(len(line)))
		size := int64(len(line))
		err := mc.gc.AsyncWrite(line, func(gc gnet.Conn, err error) error {
			o.queued.Add(-size)
			// On the monitor's loop: what gnet holds unsent is known here.
			if err != nil || gc.OutboundBuffered() > monitorMaxPending {
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
