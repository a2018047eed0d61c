package node

import (
	"errors"
	"fmt"

	"github.com/logkv/logkv"
)

// getFast is a read tx's get without the tx, for GET, the hottest read. The
// engine key is built in the client's buffer (a buffer on the stack escapes
// through the engine interface: 128 bytes a GET, 8% of its CPU in malloc and
// GC), and the value is read into another (c.vbuf) through
// logkv.AppendGet, so a hit allocates nothing on an engine that is a
// logkv.ValueAppender (every engine of this module; another falls back to
// its Get's copy).
//
// The value returned may be a slice of c.vbuf, which the client's next GET
// overwrites: the caller copies it out (the reply: WriteBulk copies it into
// the connection's output) before it reads again, and keeps nothing of it.
func (n *Node) getFast(c *client, key []byte) (value []byte, found bool, err error) {
	db := c.ks.db
	gen, err := n.gen(db)
	if err != nil {
		return nil, false, err
	}
	c.kbuf = appendDataKey(c.kbuf[:0], db, gen, key)
	v, err := logkv.AppendGet(n.eng(), c.vbuf[:0], c.kbuf)
	if cap(c.kbuf) > maxKeptKeyBuf {
		c.kbuf = nil // one huge key: do not keep its buffer
	}
	if cap(v) > maxKeptValueBuf {
		c.vbuf = nil // one big value: v stays valid, the client keeps no buffer
	} else {
		c.vbuf = v
	}
	switch {
	case errors.Is(err, logkv.ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	payload, at, err := decodeValue(v)
	if err != nil {
		return nil, false, fmt.Errorf("key %q: %w", key, err)
	}
	if at != 0 && at <= n.nowMs() {
		if n.backend.IsFollower() {
			return nil, false, nil
		}
		payload, _, found, err = n.settleExpired(db, gen, key)
		return payload, found, err
	}
	return payload, true, nil
}

// maxKeptKeyBuf bounds the engine-key buffer a client keeps between
// commands, and maxKeptValueBuf its GET value buffer: a value bigger than
// that is read into a buffer the client drops after its reply (up to 10,000
// clients would otherwise each keep the biggest value they ever read).
const (
	maxKeptKeyBuf   = 4 << 10
	maxKeptValueBuf = 16 << 10
)
