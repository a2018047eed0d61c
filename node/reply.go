package node

import "github.com/tidwall/redcon"

// replyConn is where a client's replies gather until the loop writes them
// (server.go: writeReplies). It only writes bytes: the replies a client's
// run of blind writes owes are written by submitRun (writepath.go), which
// the serving layer calls before anything could overtake them. The RESP3
// writers are in resp3.go.
//
// Every reply passes through checkLimits first, which is where the client's
// output limits are enforced as replies are produced (limits.go): base+out
// is what the client has not been sent, and past check, overLimit pauses
// its pipeline or closes it.
type replyConn struct {
	out []byte
	n   *Node
	c   *client
	// base is the output gnet had not sent when the pipeline started;
	// check is the unsent total past which checkLimits calls overLimit.
	base, check int
	// paused: the output passed the soft limit, so the pipeline stops
	// after this command. cut: it passed the hard limit, so the client
	// is being closed and its output is dropped as it is produced.
	paused, cut bool
}

// checkLimits checks the client's unsent output against its limits.
func (r *replyConn) checkLimits() {
	if r.base+len(r.out) > r.check {
		r.overLimit()
	}
}

// WriteError writes msg as an error.
func (r *replyConn) WriteError(msg string) { r.checkLimits(); r.out = redcon.AppendError(r.out, msg) }

// WriteString writes a simple string.
func (r *replyConn) WriteString(str string) { r.checkLimits(); r.out = redcon.AppendString(r.out, str) }

// WriteBulk writes a bulk string.
func (r *replyConn) WriteBulk(bulk []byte) { r.checkLimits(); r.out = redcon.AppendBulk(r.out, bulk) }

// WriteBulkString writes a bulk string.
func (r *replyConn) WriteBulkString(bulk string) {
	r.checkLimits()
	r.out = redcon.AppendBulkString(r.out, bulk)
}

// WriteInt writes an integer.
func (r *replyConn) WriteInt(num int) { r.WriteInt64(int64(num)) }

// WriteInt64 writes an integer.
func (r *replyConn) WriteInt64(num int64) { r.checkLimits(); r.out = redcon.AppendInt(r.out, num) }

// WriteArray writes an array header.
func (r *replyConn) WriteArray(count int) { r.checkLimits(); r.out = redcon.AppendArray(r.out, count) }

// WriteNull writes a null.
func (r *replyConn) WriteNull() { r.checkLimits(); r.out = appendNull(r.out, r.proto()) }
