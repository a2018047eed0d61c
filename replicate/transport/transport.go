package transport

import (
	"context"
	"errors"
	"io"
)

// ErrClosed: the stream, listener or network is closed.
var ErrClosed = errors.New("transport: closed")

// Stream is one bidirectional, ordered byte stream to a peer. Read and Write
// may be called concurrently with each other (one reader, one writer). Close
// ends both directions and the connection under it, unblocking a pending
// Read or Write; calling it twice is safe.
type Stream interface {
	io.Reader
	io.Writer
	io.Closer
	// Peer names the remote side as the transport authenticated it: its
	// certificate's common name over QUIC (a leader knows its followers by
	// it, and refuses one whose Hello claims another), the dialer's name in
	// memory.
	Peer() string
}

// Listener accepts streams dialed to it.
type Listener interface {
	// Accept waits for the next stream, until ctx is done or the listener is
	// closed (ErrClosed).
	Accept(ctx context.Context) (Stream, error)
	// Addr returns the address to dial.
	Addr() string
	// Close stops listening. Over QUIC it also closes the connections it
	// accepted, since they share its socket.
	Close() error
}

// Transport makes listeners and dials them.
type Transport interface {
	Listen(addr string) (Listener, error)
	Dial(ctx context.Context, addr string) (Stream, error)
}
