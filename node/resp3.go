package node

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/tidwall/redcon"
)

// RESP3 reply writers. A client speaks RESP2 until HELLO 3 switches it
// (cmdHello, at the end of this file); from then on the types RESP2 lacks are written
// as RESP3 frames, and as their RESP2 stand-ins before:
//
//	type      RESP3                        RESP2
//	null      _\r\n                        $-1\r\n (a null array: *-1\r\n)
//	map       %<pairs>\r\n then 2n items   *<2n>\r\n then 2n items
//	set       ~<count>\r\n then n items    *<count>\r\n then n items
//	double    ,<float>\r\n                 $<len>\r\n<float>\r\n
//	verbatim  =<len+4>\r\ntxt:<text>\r\n   $<len>\r\n<text>\r\n
//
// Floats are written as Redis 7.0 writes them (%.17g; inf, -inf, nan).
// Every writer checks the output limits first (replyConn.checkLimits), as the
// RESP2 writers in reply.go do.

// proto is the client's protocol version: 2 or 3.
func (r *replyConn) proto() int32 {
	if p := r.c.x.proto.Load(); p != 0 {
		return p
	}
	return 2
}

// appendNull appends a null in protocol proto.
func appendNull(out []byte, proto int32) []byte {
	if proto == 3 {
		return append(out, "_\r\n"...)
	}
	return redcon.AppendNull(out)
}

// WriteNullArray writes a null array (RESP2 *-1; RESP3 has one null).
func (r *replyConn) WriteNullArray() {
	r.checkLimits()
	if r.proto() == 3 {
		r.out = append(r.out, "_\r\n"...)
		return
	}
	r.out = append(r.out, "*-1\r\n"...)
}

// WriteMap writes the header of a map of pairs key-value pairs; the 2*pairs
// items follow.
func (r *replyConn) WriteMap(pairs int) {
	r.checkLimits()
	if r.proto() == 3 {
		r.out = appendHeader(r.out, '%', pairs)
		return
	}
	r.out = redcon.AppendArray(r.out, 2*pairs)
}

// WriteSet writes the header of a set of count items.
func (r *replyConn) WriteSet(count int) {
	r.checkLimits()
	if r.proto() == 3 {
		r.out = appendHeader(r.out, '~', count)
		return
	}
	r.out = redcon.AppendArray(r.out, count)
}

// WriteDouble writes a floating point number.
func (r *replyConn) WriteDouble(f float64) {
	r.checkLimits()
	s := formatDouble(f)
	if r.proto() == 3 {
		r.out = append(append(append(r.out, ','), s...), "\r\n"...)
		return
	}
	r.out = redcon.AppendBulkString(r.out, s)
}

// formatDouble formats f as Redis 7.0's addReplyDouble does.
func formatDouble(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	return strconv.FormatFloat(f, 'g', 17, 64)
}

// WriteVerbatim writes text a client should show as it is (INFO, CLIENT
// LIST): a verbatim string of format txt in RESP3, a bulk string in RESP2.
func (r *replyConn) WriteVerbatim(text string) {
	r.checkLimits()
	if r.proto() == 3 {
		r.out = appendHeader(r.out, '=', len(text)+4)
		r.out = append(append(append(r.out, "txt:"...), text...), "\r\n"...)
		return
	}
	r.out = redcon.AppendBulkString(r.out, text)
}

// WriteBool writes a boolean: RESP3 #t / #f, RESP2 the integers 1 and 0.
func (r *replyConn) WriteBool(b bool) {
	r.checkLimits()
	switch {
	case r.proto() != 3 && b:
		r.out = redcon.AppendInt(r.out, 1)
	case r.proto() != 3:
		r.out = redcon.AppendInt(r.out, 0)
	case b:
		r.out = append(r.out, "#t\r\n"...)
	default:
		r.out = append(r.out, "#f\r\n"...)
	}
}

func appendHeader(out []byte, kind byte, n int) []byte {
	out = append(out, kind)
	out = strconv.AppendInt(out, int64(n), 10)
	return append(out, "\r\n"...)
}

// cmdHello: HELLO [protover [AUTH username password] [SETNAME name]]
// switches the connection's protocol (2 or 3), authenticates and names it
// in one step, and answers with the server's description, a map.
func cmdHello(n *Node, c *client, args [][]byte) {
	var proto int64
	if len(args) >= 2 {
		v, err := strconv.ParseInt(string(args[1]), 10, 64)
		if err != nil {
			c.fail("ERR Protocol version is not an integer or out of range")
			return
		}
		if v < 2 || v > 3 {
			c.fail("NOPROTO unsupported protocol version")
			return
		}
		proto = v
	}
	var user, pass, name []byte
	for i := 2; i < len(args); i++ {
		more := len(args) - 1 - i
		switch opt := strings.ToLower(string(args[i])); {
		case opt == "auth" && more >= 2:
			user, pass = args[i+1], args[i+2]
			i += 2
		case opt == "setname" && more >= 1:
			name = args[i+1]
			i++
		default:
			c.fail(fmt.Sprintf("ERR Syntax error in HELLO option '%.128s'", args[i]))
			return
		}
	}
	if pass != nil {
		// Without a password the default user takes any, as Redis'
		// nopass default user does.
		if !n.authenticate(c, user, pass) { // the user is checked (access.go)
			return
		}
	}
	if !c.authed {
		c.fail("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	if name != nil {
		if !validClientAttr(name) {
			c.fail("ERR Client names cannot contain spaces, newlines or special characters.")
			return
		}
		c.x.mu.Lock()
		c.x.name = string(name)
		c.x.mu.Unlock()
	}
	if proto != 0 {
		c.x.proto.Store(int32(proto))
	}
	role := "master"
	if n.backend.IsFollower() {
		role = "replica"
	}
	c.conn.WriteMap(7)
	c.conn.WriteBulkString("server")
	c.conn.WriteBulkString("logkv")
	c.conn.WriteBulkString("version")
	c.conn.WriteBulkString(redisVersion)
	c.conn.WriteBulkString("proto")
	c.conn.WriteInt(int(c.conn.proto()))
	c.conn.WriteBulkString("id")
	c.conn.WriteInt64(c.id)
	c.conn.WriteBulkString("mode")
	c.conn.WriteBulkString(n.redisMode())
	c.conn.WriteBulkString("role")
	c.conn.WriteBulkString(role)
	c.conn.WriteBulkString("modules")
	c.conn.WriteArray(0)
}
