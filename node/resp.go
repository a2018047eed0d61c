package node

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// The request side of RESP2, as a Redis server reads it. A request is
// either a multibulk array of bulk strings,
//
//	*<count>\r\n   then count times   $<length>\r\n<length bytes>\r\n
//
// or an inline command: one line ended by \n (a \r before it is dropped),
// split into arguments exactly as Redis' sdssplitargs splits it: blanks
// separate arguments; "double quotes" take the escapes \n \r \t \b \a \xHH
// and \ before any other byte; 'single quotes' take \'; a closing quote
// must be followed by a blank or the end of the line; a NUL byte ends the
// line (sdssplitargs reads a C string). Counts and lengths are decimal with
// an optional minus sign and no leading zeros (Redis' string2ll); a count of
// zero or less is an empty request, skipped as Redis does. The two bytes
// after a bulk string are skipped unread, as Redis skips them.
//
// The parser checks every count and length against its limits before it
// trusts them, and allocates nothing for a multibulk request: arguments are
// slices of the input (an inline request's are unescaped into a buffer the
// parser reuses). (redcon's parser, which the node used before, panicked on
// a bulk length near 2^63 and looped for hours on a huge count.)
//
// A client's reqParser keeps its place in a request that has not all
// arrived: the offsets of the arguments read so far and where to resume. A
// request sent in many reads is parsed once, in linear time; a parser that
// started over on each read spent seconds of CPU on a 200,000-argument
// request sent in small pieces.

// Protocol errors in Redis' words; the connection is closed after them.
var (
	errMultiBulkLength = errors.New("ERR Protocol error: invalid multibulk length")
	errBulkLength      = errors.New("ERR Protocol error: invalid bulk length")
	errUnauthMultiBulk = errors.New("ERR Protocol error: unauthenticated multibulk length")
	errUnauthBulk      = errors.New("ERR Protocol error: unauthenticated bulk length")
	errInlineTooBig    = errors.New("ERR Protocol error: too big inline request")
	errMultiBulkTooBig = errors.New("ERR Protocol error: too big mbulk count string")
	errBulkTooBig      = errors.New("ERR Protocol error: too big bulk count string")
	errUnbalanced      = errors.New("ERR Protocol error: unbalanced quotes in request")
	// errExpectedBulk is wrapped with the byte found: "expected '$', got 'X'".
	errExpectedBulk = errors.New("ERR Protocol error: expected '$'")
)

// maxInline bounds an inline request's line, and a count or length line, as
// Redis' PROTO_INLINE_MAX_SIZE.
const maxInline = 64 << 10

// parseLimits are the largest request a parser accepts.
type parseLimits struct {
	maxArgs int   // most elements in one request array
	maxBulk int64 // longest bulk string
	// unauth: the limits are those of a client before AUTH, and say so.
	unauth bool
}

// parseRequest parses the first request in buf with a parser of its own.
// It appends the arguments to args[:0] and returns them with the bytes the
// request took. When buf holds no complete request it returns size 0 and
// need, a lower bound on the bytes the request will take (there is no use
// parsing again before that many are buffered). A complete empty request
// returns no arguments and its size.
func parseRequest(buf []byte, args [][]byte, lim parseLimits) (_ [][]byte, size, need int, err error) {
	var p reqParser
	return p.parse(buf, args, lim)
}

// reqParser parses one client's requests. Between calls it remembers how
// far it got in a request that is not complete, so the next call, given the
// same request's bytes from its start with more appended, resumes there.
// Once a request is complete (or refused) the parser starts afresh.
type reqParser struct {
	// count is the number of arguments of the multibulk request being
	// read; 0 when none is.
	count int
	// pos is where the next argument's header starts, from the request's
	// start.
	pos int
	// offs holds the start and end of each argument read so far.
	offs []int
	// scanned is how many bytes of an inline request hold no newline.
	scanned int
	// inline holds an inline request's arguments, unescaped.
	inline []byte
}

// parse parses the request at the start of buf, as parseRequest does,
// resuming where the last call stopped when that call found the request
// incomplete.
func (p *reqParser) parse(buf []byte, args [][]byte, lim parseLimits) (_ [][]byte, size, need int, err error) {
	args = args[:0]
	if len(buf) == 0 {
		return args, 0, 1, nil
	}
	if buf[0] != '*' {
		return p.parseInline(buf, args)
	}
	if p.count == 0 {
		count, pos, err := parseHeader(buf, 0, errMultiBulkLength)
		if err != nil {
			return args, 0, 0, err
		}
		if pos == 0 {
			if len(buf) > maxInline {
				return args, 0, 0, errMultiBulkTooBig
			}
			return args, 0, len(buf) + 1, nil
		}
		if count <= 0 {
			return args, pos, 0, nil
		}
		if count > int64(lim.maxArgs) {
			if lim.unauth {
				return args, 0, 0, errUnauthMultiBulk
			}
			return args, 0, 0, errMultiBulkLength
		}
		p.count, p.pos, p.offs = int(count), pos, p.offs[:0]
	}
	// The arguments read by earlier calls are at p.offs (earlier of them);
	// this call's go straight to args, and only when the request is still
	// incomplete are their offsets kept (keep), for the next call. The
	// earlier ones join args once, when the request is complete: rebuilt at
	// every call, a big request arriving in pieces cost time quadratic in
	// its size (an MGET of 131k keys in 1,460-byte reads: 305 ms of the
	// event loop).
	earlier := len(p.offs) / 2
	pos := p.pos
	for earlier+len(args) < p.count {
		if pos >= len(buf) {
			p.keep(buf, pos)
			return args, 0, pos + 1, nil
		}
		if buf[pos] != '$' {
			p.count = 0
			return args, 0, 0, fmt.Errorf("%w, got '%c'", errExpectedBulk, buf[pos])
		}
		n, next, err := parseHeader(buf, pos, errBulkLength)
		if err != nil {
			p.count = 0
			return args, 0, 0, err
		}
		if next == 0 {
			if len(buf)-pos > maxInline {
				p.count = 0
				return args, 0, 0, errBulkTooBig
			}
			p.keep(buf, pos)
			return args, 0, len(buf) + 1, nil
		}
		if n < 0 || n > lim.maxBulk {
			p.count = 0
			if lim.unauth && n >= 0 {
				return args, 0, 0, errUnauthBulk
			}
			return args, 0, 0, errBulkLength
		}
		end := next + int(n)
		if end+2 > len(buf) {
			p.keep(buf, pos) // the header is reread: a few bytes
			return args, 0, end + 2, nil
		}
		args = append(args, buf[next:end:end])
		pos = end + 2
	}
	if earlier > 0 {
		read := len(args)
		args = slices.Grow(args, earlier)[:earlier+read]
		copy(args[earlier:], args[:read])
		for i := range earlier {
			args[i] = buf[p.offs[2*i]:p.offs[2*i+1]:p.offs[2*i+1]]
		}
	}
	p.count = 0
	if cap(p.offs) > 1<<12 {
		p.offs = nil // one huge request: do not keep its offsets
	}
	return args, pos, 0, nil
}

// keep records the offsets of the complete arguments between p.pos and pos,
// read (and checked) by this call, and that the next call resumes at pos.
func (p *reqParser) keep(buf []byte, pos int) {
	for at := p.pos; at < pos; {
		n, next, _ := parseHeader(buf, at, errBulkLength)
		end := next + int(n)
		p.offs = append(p.offs, next, end)
		at = end + 2
	}
	p.pos = pos
}

// parseHeader parses the number after the type byte at buf[at] up to its
// CRLF, and returns it with the offset just past the CRLF, or next 0 when the
// line is not complete yet. A malformed line (as Redis' string2ll sees it:
// a leading zero, "-0" and "+1" are), or one of more than 18 digits, is bad.
func parseHeader(buf []byte, at int, bad error) (n int64, next int, err error) {
	// Nearly every header of a request is one or two digits ("*3", "$3",
	// "$16"): read those without the loop. Anything else, a leading zero
	// of two digits included, takes the loop, which judges it.
	if at+4 < len(buf) {
		d0, d1 := buf[at+1]-'0', buf[at+2]-'0'
		switch {
		case d0 <= 9 && buf[at+2] == '\r' && buf[at+3] == '\n':
			return int64(d0), at + 4, nil
		case d0-1 <= 8 && d1 <= 9 && buf[at+3] == '\r' && buf[at+4] == '\n':
			return int64(d0)*10 + int64(d1), at + 5, nil
		}
	}
	i := at + 1
	neg := false
	if i < len(buf) && buf[i] == '-' {
		neg = true
		i++
	}
	digits := 0
	for ; i < len(buf); i++ {
		b := buf[i]
		switch {
		case '0' <= b && b <= '9':
			if digits == 1 && n == 0 {
				return 0, 0, bad // a leading zero
			}
			digits++
			if digits > 18 { // 10^18 is past every limit and far from overflow
				return 0, 0, bad
			}
			n = n*10 + int64(b-'0')
			continue
		case b == '\r':
			if i+1 == len(buf) {
				return 0, 0, nil
			}
			if buf[i+1] != '\n' || digits == 0 || (neg && n == 0) {
				return 0, 0, bad
			}
			if neg {
				n = -n
			}
			return n, i + 2, nil
		}
		return 0, 0, bad
	}
	return 0, 0, nil // more digits to come
}

// parseInline parses an inline request: the arguments of one line.
func (p *reqParser) parseInline(buf []byte, args [][]byte) ([][]byte, int, int, error) {
	i := bytes.IndexByte(buf[p.scanned:], '\n')
	if i < 0 {
		if len(buf) > maxInline {
			p.scanned = 0
			return args, 0, 0, errInlineTooBig
		}
		p.scanned = len(buf)
		return args, 0, len(buf) + 1, nil
	}
	end := p.scanned + i
	p.scanned = 0
	line := buf[:end]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	args, err := p.splitArgs(line, args)
	if err != nil {
		return args[:0], 0, 0, err
	}
	return args, end + 1, 0, nil
}

// splitArgs splits line as Redis' sdssplitargs does, appending the
// arguments to args.
func (p *reqParser) splitArgs(line []byte, args [][]byte) ([][]byte, error) {
	if cap(p.inline) > 2*maxInline {
		p.inline = nil
	}
	p.inline = p.inline[:0]
	at := func(i int) byte { // the C string's byte i: 0 past the end
		if i < len(line) {
			return line[i]
		}
		return 0
	}
	i := 0
	for {
		for isSpace(at(i)) {
			i++
		}
		if at(i) == 0 {
			return args, nil
		}
		start := len(p.inline)
		inq, insq, done := false, false, false
		for !done {
			c := at(i)
			switch {
			case inq:
				switch {
				case c == '\\' && at(i+1) == 'x' && isHex(at(i+2)) && isHex(at(i+3)):
					p.inline = append(p.inline, unhex(at(i+2))<<4|unhex(at(i+3)))
					i += 3
				case c == '\\' && at(i+1) != 0:
					i++
					switch e := at(i); e {
					case 'n':
						p.inline = append(p.inline, '\n')
					case 'r':
						p.inline = append(p.inline, '\r')
					case 't':
						p.inline = append(p.inline, '\t')
					case 'b':
						p.inline = append(p.inline, '\b')
					case 'a':
						p.inline = append(p.inline, '\a')
					default:
						p.inline = append(p.inline, e)
					}
				case c == '"':
					if next := at(i + 1); next != 0 && !isSpace(next) {
						return args, errUnbalanced // a closing quote is followed by a blank
					}
					done = true
				case c == 0:
					return args, errUnbalanced // unterminated quotes
				default:
					p.inline = append(p.inline, c)
				}
			case insq:
				switch {
				case c == '\\' && at(i+1) == '\'':
					i++
					p.inline = append(p.inline, '\'')
				case c == '\'':
					if next := at(i + 1); next != 0 && !isSpace(next) {
						return args, errUnbalanced
					}
					done = true
				case c == 0:
					return args, errUnbalanced
				default:
					p.inline = append(p.inline, c)
				}
			default:
				switch c {
				case ' ', '\n', '\r', '\t', 0:
					done = true
				case '"':
					inq = true
				case '\'':
					insq = true
				default:
					p.inline = append(p.inline, c)
				}
			}
			if at(i) != 0 {
				i++
			}
		}
		end := len(p.inline)
		arg := p.inline[start:end:end]
		if arg == nil {
			arg = []byte{} // an empty argument ('' first on the line) is empty, not absent, as in a multibulk request
		}
		args = append(args, arg)
	}
}

// isSpace is C's isspace in the C locale.
func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\v' || b == '\f' || b == '\r'
}

func isHex(b byte) bool {
	return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F'
}

func unhex(b byte) byte {
	switch {
	case b <= '9':
		return b - '0'
	case b <= 'F':
		return b - 'A' + 10
	}
	return b - 'a' + 10
}
