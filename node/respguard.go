package node

import "errors"

// respGuard checks the length prefixes of the RESP requests a client sends,
// as the bytes arrive and before redcon parses them. redcon v1.6.4 trusts
// them: a bulk length near 2^63 overflows an index and panics in redcon's
// connection goroutine (which kills the process), and a huge array count
// makes it loop for hours. The guard is not a parser: it follows the
// stream's framing (array count, then that many bulk headers and bodies, or
// an inline line) just far enough to refuse any count or length over its
// limits, and otherwise leaves every error for redcon to report.
type respGuard struct {
	maxArgs int64 // most elements in one request array
	maxBulk int64 // longest bulk string

	state  guardState
	num    int64 // the number being read
	neg    bool  // it has a minus sign
	digits int   // how many of its characters were read
	args   int64 // bulk strings left in the current array
	body   int64 // bytes left in the current bulk string, CRLF included
}

type guardState uint8

const (
	guardStart     guardState = iota // at the start of a request
	guardCount                       // reading an array count after '*'
	guardBulkStart                   // expecting '$'
	guardBulkLen                     // reading a bulk length after '$'
	guardBody                        // skipping a bulk string's bytes
	guardInline                      // skipping an inline request's line
)

// Protocol errors in Redis' words; the connection is closed after them.
var (
	errMultiBulkLength = errors.New("ERR Protocol error: invalid multibulk length")
	errBulkLength      = errors.New("ERR Protocol error: invalid bulk length")
)

// scan follows p, the next bytes from the client, and returns an error when
// a count or length is malformed or over the limits.
func (g *respGuard) scan(p []byte) error {
	for len(p) > 0 {
		switch g.state {
		case guardStart:
			if p[0] == '*' {
				g.state, g.num, g.neg, g.digits = guardCount, 0, false, 0
			} else {
				g.state = guardInline
			}
			p = p[1:]
		case guardInline:
			i := indexByte(p, '\n')
			if i < 0 {
				return nil
			}
			p, g.state = p[i+1:], guardStart
		case guardCount, guardBulkLen:
			c := p[0]
			p = p[1:]
			switch {
			case c >= '0' && c <= '9':
				g.num = g.num*10 + int64(c-'0')
				g.digits++
				if g.digits > 19 || g.tooBig(g.num) {
					return g.lengthError()
				}
			case c == '-' && g.digits == 0 && !g.neg:
				g.neg = true
			case c == '\r':
			case c == '\n':
				switch {
				case g.state == guardCount && (g.neg || g.num == 0):
					g.state = guardStart // an empty or null array: no request
				case g.state == guardCount:
					g.args, g.state = g.num, guardBulkStart
				case g.neg:
					return errBulkLength
				default:
					g.body, g.state = g.num+2, guardBody
				}
			default:
				return g.lengthError()
			}
		case guardBulkStart:
			if p[0] != '$' {
				return errBulkLength
			}
			g.state, g.num, g.neg, g.digits = guardBulkLen, 0, false, 0
			p = p[1:]
		case guardBody:
			n := min(int64(len(p)), g.body)
			p, g.body = p[n:], g.body-n
			if g.body == 0 {
				g.args--
				g.state = guardBulkStart
				if g.args == 0 {
					g.state = guardStart
				}
			}
		}
	}
	return nil
}

func (g *respGuard) tooBig(n int64) bool {
	if g.state == guardCount {
		return n > g.maxArgs
	}
	return n > g.maxBulk
}

func (g *respGuard) lengthError() error {
	if g.state == guardCount {
		return errMultiBulkLength
	}
	return errBulkLength
}

func indexByte(p []byte, c byte) int {
	for i, b := range p {
		if b == c {
			return i
		}
	}
	return -1
}
