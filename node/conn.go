package node

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// errRequestTooLarge ends a connection that sent more than
// limits.max_request_size bytes without completing a command.
var errRequestTooLarge = errors.New("node: request too large")

// listener wraps accepted connections in clientConns.
type listener struct {
	net.Listener
	n *Node
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lim := l.n.cfg.Limits
	cc := &clientConn{Conn: c, n: l.n, limit: int64(lim.MaxRequestSize),
		guard: respGuard{maxArgs: maxRequestArgs, maxBulk: int64(lim.MaxRequestSize)}}
	l.n.connsMu.Lock()
	l.n.conns[cc] = struct{}{}
	l.n.connsWG.Add(1)
	l.n.connsMu.Unlock()
	return cc, nil
}

// clientConn is a client's connection as redcon sees it. It does two things
// redcon does not: it bounds the bytes a client may send toward one command,
// and on shutdown it defers closing a busy connection until its pipeline's
// replies are written (redcon closes every connection when its listener
// closes).
type clientConn struct {
	net.Conn
	n     *Node
	limit int64

	guard respGuard // touched only by Read, which redcon calls from one goroutine

	mu       sync.Mutex
	pending  int64 // bytes read since the current command began
	reading  bool  // blocked in Read: idle, waiting for the client
	closeReq bool  // close once the current pipeline is done
	closed   bool
}

// commandStarted is called as each command begins: what was read so far
// belonged to complete commands.
func (c *clientConn) commandStarted() {
	c.mu.Lock()
	c.pending = 0
	c.mu.Unlock()
}

func (c *clientConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.closeReq {
		c.mu.Unlock()
		c.closeNow()
		return 0, io.EOF
	}
	c.reading = true
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.reading = false
	c.pending += int64(n)
	over := c.pending > c.limit
	c.mu.Unlock()
	if over {
		fmt.Fprintf(c.Conn, "-ERR request too large: more than %d bytes without a complete command (limits.max_request_size)\r\n", c.limit)
		c.closeNow()
		return 0, errRequestTooLarge
	}
	if gerr := c.guard.scan(p[:n]); gerr != nil {
		fmt.Fprintf(c.Conn, "-%s\r\n", gerr)
		c.closeNow()
		return 0, gerr
	}
	return n, err
}

// maxRequestArgs bounds the elements of one request array: an MSET of a
// million pairs would need two million, which a client should split.
const maxRequestArgs = 1 << 20

// Close closes an idle connection now and a busy one after its pipeline.
func (c *clientConn) Close() error {
	c.mu.Lock()
	if !c.n.closing.Load() || c.reading || c.closed {
		c.mu.Unlock()
		return c.closeNow()
	}
	c.closeReq = true
	c.mu.Unlock()
	return nil
}

// closeNow closes the socket at once.
func (c *clientConn) closeNow() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	err := c.Conn.Close()
	c.n.connsMu.Lock()
	delete(c.n.conns, c)
	c.n.connsMu.Unlock()
	c.n.connsWG.Done()
	return err
}
