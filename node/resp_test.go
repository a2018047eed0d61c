package node

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/redcon"
)

var testLimits = parseLimits{maxArgs: 8, maxBulk: 100}

// parseAll parses every complete request of stream.
func parseAll(t *testing.T, stream []byte, lim parseLimits) (reqs [][]string, rest int) {
	var args [][]byte
	off := 0
	for {
		var size int
		var err error
		args, size, _, err = parseRequest(stream[off:], args, lim)
		require.NoError(t, err)
		if size == 0 {
			return reqs, len(stream) - off
		}
		off += size
		if len(args) > 0 {
			var req []string
			for _, a := range args {
				req = append(req, string(a))
			}
			reqs = append(reqs, req)
		}
	}
}

// Legitimate traffic parses to its requests, and any prefix of it parses to
// the requests wholly inside the prefix, with need past its end.
func TestParseRequestStreams(t *testing.T) {
	var w []byte
	w = redcon.AppendArray(w, 3)
	w = redcon.AppendBulkString(w, "SET")
	w = redcon.AppendBulkString(w, "key")
	w = redcon.AppendBulkString(w, strings.Repeat("v", 100))
	w = redcon.AppendArray(w, 1)
	w = redcon.AppendBulkString(w, "PING")
	w = redcon.AppendArray(w, 2)
	w = redcon.AppendBulkString(w, "GET")
	w = redcon.AppendBulkString(w, "") // empty bulk
	stream := string(w) + "PING\r\n  ECHO \t hi\n" + "*0\r\n*-1\r\n" + "\r\n"
	want := [][]string{{"SET", "key", strings.Repeat("v", 100)}, {"PING"}, {"GET", ""}, {"PING"}, {"ECHO", "hi"}}
	got, rest := parseAll(t, []byte(stream), testLimits)
	require.Equal(t, want, got)
	require.Zero(t, rest)

	full := 0 // requests (with empty ones) wholly in the prefix so far
	ends := []int{}
	for off := 0; off < len(stream); {
		_, size, _, err := parseRequest([]byte(stream[off:]), nil, testLimits)
		require.NoError(t, err)
		off += size
		ends = append(ends, off)
	}
	for cut := 0; cut <= len(stream); cut++ {
		for full < len(ends) && ends[full] <= cut {
			full++
		}
		prefix := []byte(stream[:cut])
		off := 0
		for range full {
			_, size, _, err := parseRequest(prefix[off:], nil, testLimits)
			require.NoError(t, err)
			require.NotZero(t, size, "cut %d", cut)
			off += size
		}
		_, size, need, err := parseRequest(prefix[off:], nil, testLimits)
		require.NoError(t, err)
		require.Zero(t, size, "cut %d: nothing complete after the whole requests", cut)
		require.Greater(t, off+need, cut, "need reaches past what is buffered")
		if full < len(ends) {
			require.LessOrEqual(t, off+need, ends[full], "need never overshoots the request")
		}
	}
}

func TestParseRequestRefuses(t *testing.T) {
	cases := map[string]error{
		"*1\r\n$9223372036854775807\r\nab\r\n": errBulkLength, // redcon panicked on it
		"*9223372036854775807\r\n":             errMultiBulkLength,
		"*99999999999999999999999\r\n":         errMultiBulkLength,
		"*9\r\n":                               errMultiBulkLength, // over maxArgs
		"*1\r\n$101\r\n":                       errBulkLength,      // over maxBulk
		"*1\r\n$-5\r\n":                        errBulkLength,
		"*1\r\n$\r\n":                          errBulkLength,
		"*1\r\n$03\r\nabc\r\n":                 errBulkLength, // a leading zero, as string2ll
		"*01\r\n":                              errMultiBulkLength,
		"*1\r\n$-0\r\n":                        errBulkLength,
		"*1\r\nX3\r\n":                         errExpectedBulk,
		"ECHO \"abc\r\n":                       errUnbalanced,
		"ECHO \"a\"b\r\n":                      errUnbalanced, // a closing quote is followed by a blank
		"ECHO 'a\r\n":                          errUnbalanced,
		"*1x\r\n":                              errMultiBulkLength,
		"*1\rx":                                errMultiBulkLength,
		strings.Repeat("a", maxInline+1):       errInlineTooBig,
	}
	for in, want := range cases {
		var err error
		for i := 1; i <= len(in) && err == nil; i++ { // every prefix: the worst split
			_, _, _, err = parseRequest([]byte(in[:i]), nil, testLimits)
		}
		require.ErrorIs(t, err, want, "%q", in)
	}
}

// Parsing allocates nothing once the argument slice has grown.
func TestParseRequestAllocs(t *testing.T) {
	req := []byte("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n")
	args := make([][]byte, 0, 4)
	var p reqParser
	allocs := testing.AllocsPerRun(100, func() {
		args, _, _, _ = p.parse(req, args, testLimits)
	})
	require.Zero(t, allocs)
}

// The inputs that crashed or stalled redcon are refused by a running node
// with Redis' protocol error, and the node goes on serving.
func TestHugeLengthsDoNotKillTheNode(t *testing.T) {
	n := startNode(t, nil)
	for _, in := range []string{"*1\r\n$9223372036854775807\r\nab\r\n", "*9223372036854775807\r\n", "*2\r\n$3\r\nGET\r\n$99999999999\r\n"} {
		conn, err := net.Dial("tcp", n.Addr())
		require.NoError(t, err)
		fmt.Fprint(conn, in)
		line, err := bufio.NewReader(conn).ReadString('\n')
		require.NoError(t, err, "%q", in)
		require.Contains(t, line, "ERR Protocol error: invalid", "%q", in)
		conn.Close()
	}
	require.Equal(t, "PONG", dial(t, n, nil).Ping(context.Background()).Val())
}

// A protocol error answers the requests before it, then the error, then
// closes the connection.
func TestProtocolErrorAfterRequests(t *testing.T) {
	n := startNode(t, nil)
	out := sendAll(t, n, "SET a 1\r\nGET a\r\n*1\r\nX\r\nPING\r\n")
	require.Equal(t, "+OK\r\n$1\r\n1\r\n-ERR Protocol error: expected '$', got 'X'\r\n", out)
}

// parseHeader reads every short header as Redis' string2ll does (digits,
// one leading '-', no leading zero, no "-0"), whether the line ends the
// buffer or more follows it: the one- and two-digit forms have a path of
// their own.
func TestParseHeaderShortForms(t *testing.T) {
	const alphabet = "0159-+ x"
	var bodies []string
	for _, a := range alphabet {
		bodies = append(bodies, string(a))
		for _, b := range alphabet {
			bodies = append(bodies, string(a)+string(b))
			for _, c := range alphabet {
				bodies = append(bodies, string(a)+string(b)+string(c))
			}
		}
	}
	for _, body := range bodies {
		v, perr := strconv.ParseInt(body, 10, 64)
		valid := perr == nil && strconv.FormatInt(v, 10) == body
		for _, tail := range []string{"\r\n", "\r\n$", "\r\n$3\r\nabc\r\n", "\rx", "\n\r\n"} {
			buf := []byte("$" + body + tail)
			n, next, err := parseHeader(buf, 0, errBulkLength)
			if !valid || tail[1] != '\n' {
				require.Error(t, err, "%q", buf)
				continue
			}
			require.NoError(t, err, "%q", buf)
			require.Equal(t, v, n, "%q", buf)
			require.Equal(t, len(body)+3, next, "%q", buf)
		}
		// Without its CRLF, or with only the CR, the line is not complete
		// (or already bad).
		for _, tail := range []string{"", "\r"} {
			buf := []byte("$" + body + tail)
			_, next, err := parseHeader(buf, 0, errBulkLength)
			require.Zero(t, next, "%q", buf)
			if valid {
				require.NoError(t, err, "%q", buf)
			}
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("*1\r\n$4\r\nPING\r\n"), uint16(3))
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n"), uint16(9))
	f.Add([]byte("*1\r\n$9223372036854775807\r\nab\r\n"), uint16(1))
	f.Add([]byte(" ECHO  hi \r\n*0\r\n*-1\r\n"), uint16(5))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		lim := parseLimits{maxArgs: 64, maxBulk: 1 << 10}
		args, size, need, err := parseRequest(data, nil, lim)
		if err != nil {
			return
		}
		if size == 0 {
			require.Greater(t, need, len(data), "an incomplete request needs more than is there")
			return
		}
		require.LessOrEqual(t, size, len(data))
		// A complete request parses the same from any longer buffer, and
		// from none shorter.
		k := int(cut) % (size + 1)
		if _, s, _, err := parseRequest(data[:k], nil, lim); err == nil && k < size {
			require.Zero(t, s, "a prefix of %d bytes is not complete", k)
		}
		// Re-encoded as a multibulk array, the arguments parse back (an
		// inline request may hold more, or longer, than the array limits).
		if len(args) > lim.maxArgs {
			return
		}
		for _, a := range args {
			if len(a) > int(lim.maxBulk) {
				return
			}
		}
		var w []byte
		w = redcon.AppendArray(w, len(args))
		for _, a := range args {
			w = redcon.AppendBulk(w, a)
		}
		again, s, _, err := parseRequest(w, nil, lim)
		if len(args) == 0 {
			return // *0: an empty request
		}
		require.NoError(t, err)
		require.Equal(t, len(w), s)
		require.Equal(t, args, again)
	})
}

// Inline requests split as Redis' sdssplitargs splits them (each case
// checked against redis-server 7.0.15).
func TestInlineSplitsAsRedis(t *testing.T) {
	for in, want := range map[string][]string{
		`ECHO "a\x41b"`:     {"ECHO", "aAb"},
		`ECHO 'it\'s'`:      {"ECHO", "it's"},
		`ECHO a"b c"`:       {"ECHO", "ab c"},
		`ECHO "\n\t\z"`:     {"ECHO", "\n\tz"},
		"ECHO a\vb":         {"ECHO", "a\vb"},
		"  SET\tk  v ":      {"SET", "k", "v"},
		`ECHO ""`:           {"ECHO", ""},
		"ECHO a\x00b c":     {"ECHO", "a"}, // a NUL ends sdssplitargs' C string
		`ECHO "\x4"`:        {"ECHO", "x4"},
		`ECHO 'a\nb' "c d"`: {"ECHO", `a\nb`, "c d"},
	} {
		args, size, _, err := parseRequest([]byte(in+"\r\n"), nil, testLimits)
		require.NoError(t, err, "%q", in)
		require.Equal(t, len(in)+2, size)
		var got []string
		for _, a := range args {
			got = append(got, string(a))
		}
		require.Equal(t, want, got, "%q", in)
	}
}

// A request that arrives in many reads is parsed once: the parser resumes
// at the first argument it has not read (before, each read parsed from
// byte 0, and a 200,000-argument request sent in small pieces cost seconds
// of CPU).
func TestParserResumes(t *testing.T) {
	var w []byte
	const args = 20000
	w = redcon.AppendArray(w, args)
	for i := range args {
		w = redcon.AppendBulkString(w, fmt.Sprint(i))
	}
	lim := parseLimits{maxArgs: args, maxBulk: 100}
	var p reqParser
	last := 0
	for end := 1; end < len(w); end += 97 {
		_, size, need, err := p.parse(w[:end], nil, lim)
		require.NoError(t, err)
		require.Zero(t, size)
		require.Greater(t, need, end)
		require.GreaterOrEqual(t, p.pos, last, "the parser never goes back")
		require.GreaterOrEqual(t, p.pos, end-40, "it stops at most one argument header short of the end")
		last = p.pos
	}
	got, size, _, err := p.parse(w, nil, lim)
	require.NoError(t, err)
	require.Equal(t, len(w), size)
	require.Len(t, got, args)
	require.Equal(t, "19999", string(got[args-1]))
}

// However the bytes of a stream are split into reads, a parser that keeps
// its state across them finds the same requests, and the same error, as
// parsing the whole stream at once.
func FuzzParseSplitReads(f *testing.F) {
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n*1\r\n$4\r\nPING\r\n"), []byte{3, 1, 7})
	f.Add([]byte("ECHO \"a\\x41\" 'b'\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n"), []byte{1, 1, 1, 1})
	f.Add([]byte("*1\r\n$x\r\n"), []byte{2})
	f.Fuzz(func(t *testing.T, data []byte, cuts []byte) {
		lim := parseLimits{maxArgs: 64, maxBulk: 1 << 10}
		type result struct {
			reqs [][]string
			err  error
		}
		strs := func(args [][]byte) []string {
			out := []string{}
			for _, a := range args {
				out = append(out, string(a))
			}
			return out
		}
		// Whole: fresh parses from each request's start.
		var whole result
		for off := 0; ; {
			args, size, _, err := parseRequest(data[off:], nil, lim)
			if err != nil {
				whole.err = err
				break
			}
			if size == 0 {
				break
			}
			whole.reqs = append(whole.reqs, strs(args))
			off += size
		}
		// Split: one parser, fed the stream in reads cut at cuts.
		var split result
		var p reqParser
		off, end := 0, 0
		for i := 0; end < len(data) && split.err == nil; i++ {
			step := 1 + len(data)
			if i < len(cuts) {
				step = 1 + int(cuts[i])
			}
			end = min(len(data), end+step)
			for {
				args, size, _, err := p.parse(data[off:end], nil, lim)
				if err != nil {
					split.err = err
					break
				}
				if size == 0 {
					break
				}
				split.reqs = append(split.reqs, strs(args))
				off += size
			}
		}
		require.Equal(t, whole.reqs, split.reqs)
		if whole.err == nil || split.err == nil {
			require.Equal(t, whole.err, split.err)
		} else {
			require.Equal(t, whole.err.Error(), split.err.Error())
		}
	})
}

// BenchmarkParseInPieces: an MGET of 131,072 keys (0.9 MB) parsed as it
// arrives, in 1,460-byte reads, each parse given the request from its start
// (as serve does): the cost of a big request sent slowly.
func BenchmarkParseInPieces(b *testing.B) {
	req := []byte(fmt.Sprintf("*%d\r\n$4\r\nMGET\r\n", 1<<17+1))
	for i := range 1 << 17 {
		req = fmt.Appendf(req, "$%d\r\nk%d\r\n", len(fmt.Sprint(i))+1, i)
	}
	var args [][]byte
	for b.Loop() {
		var p reqParser
		for end := 1460; ; end += 1460 {
			end = min(end, len(req))
			var size int
			var err error
			args, size, _, err = p.parse(req[:end], args, requestLimits)
			if err != nil {
				b.Fatal(err)
			}
			if size != 0 {
				if len(args) != 1<<17+1 {
					b.Fatalf("%d args", len(args))
				}
				break
			}
		}
	}
}
