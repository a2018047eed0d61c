package node

import "errors"

// The request side of RESP2, as a Redis server reads it. A request is
// either a multibulk array of bulk strings,
//
//	*<count>\r\n   then count times   $<length>\r\n<length bytes>\r\n
//
// or an inline command: one line of words separated by spaces or tabs,
// ended by \n (a \r before it is dropped), as telnet users and redis-cli's
// PING probe send. Counts and lengths are decimal with an optional minus
// sign; a count of zero or less is an empty request, skipped as Redis does.
//
// parseRequest checks every count and length against its limits before it
// trusts them, and never allocates: arguments are slices of the input.
// (redcon's parser, which the node used before, panicked on a bulk length
// near 2^63 and looped for hours on a huge count.)

// Protocol errors in Redis' words; the connection is closed after them.
var (
	errMultiBulkLength = errors.New("ERR Protocol error: invalid multibulk length")
	errBulkLength      = errors.New("ERR Protocol error: invalid bulk length")
	errInlineTooBig    = errors.New("ERR Protocol error: too big inline request")
	errExpectedBulk    = errors.New("ERR Protocol error: expected '$'")
)

// maxInline bounds an inline request's line, as Redis' PROTO_INLINE_MAX_SIZE.
const maxInline = 64 << 10

// parseLimits are the largest request parseRequest accepts.
type parseLimits struct {
	maxArgs int   // most elements in one request array
	maxBulk int64 // longest bulk string
}

// parseRequest parses the first request in buf. It appends the arguments
// to args[:0] and returns them with the bytes the request took. When buf
// holds no complete request it returns size 0 and need, a lower bound on the
// bytes the request will take (there is no use parsing again before that
// many are buffered). A complete empty request returns no arguments and its
// size.
func parseRequest(buf []byte, args [][]byte, lim parseLimits) (_ [][]byte, size, need int, err error) {
	args = args[:0]
	if len(buf) == 0 {
		return args, 0, 1, nil
	}
	if buf[0] != '*' {
		return parseInline(buf, args)
	}
	count, pos, err := parseHeader(buf, 0, errMultiBulkLength)
	if pos == 0 || err != nil {
		return args, 0, len(buf) + 1, err
	}
	if count <= 0 {
		return args, pos, 0, nil
	}
	if count > int64(lim.maxArgs) {
		return args, 0, 0, errMultiBulkLength
	}
	for i := int64(0); i < count; i++ {
		if pos >= len(buf) {
			return args, 0, pos + 1, nil
		}
		if buf[pos] != '$' {
			return args, 0, 0, errExpectedBulk
		}
		n, next, err := parseHeader(buf, pos, errBulkLength)
		if err != nil {
			return args, 0, 0, err
		}
		if next == 0 {
			return args, 0, len(buf) + 1, nil
		}
		if n < 0 || n > lim.maxBulk {
			return args, 0, 0, errBulkLength
		}
		end := next + int(n)
		if end+2 > len(buf) {
			return args, 0, end + 2, nil
		}
		if buf[end] != '\r' || buf[end+1] != '\n' {
			return args, 0, 0, errBulkLength
		}
		args = append(args, buf[next:end:end])
		pos = end + 2
	}
	return args, pos, 0, nil
}

// parseHeader parses the number after the type byte at buf[at] up to its
// CRLF, and returns it with the offset just past the CRLF, or next 0 when the
// line is not complete yet. A malformed line, or one of more than 18 digits,
// is bad.
func parseHeader(buf []byte, at int, bad error) (n int64, next int, err error) {
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
			if buf[i+1] != '\n' || digits == 0 {
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

// parseInline parses an inline request: the words of one line.
func parseInline(buf []byte, args [][]byte) ([][]byte, int, int, error) {
	end := -1
	for i, b := range buf {
		if b == '\n' {
			end = i
			break
		}
		if i >= maxInline {
			return args, 0, 0, errInlineTooBig
		}
	}
	if end < 0 {
		return args, 0, len(buf) + 1, nil
	}
	line := buf[:end]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	for len(line) > 0 {
		i := 0
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		line = line[i:]
		j := 0
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		if j > 0 {
			args = append(args, line[:j:j])
		}
		line = line[j:]
	}
	return args, end + 1, 0, nil
}
