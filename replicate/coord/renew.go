package coord

import (
	"context"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxStreams bounds the keep-alive streams a renewer keeps open: a renewal
// unanswered for long is retried on another stream (see renewer), at most
// this many waiting at once. keepAlive sends every TTL/3 and retries after
// TTL/6, so four are the first request that went unanswered and the three
// retries that can still reach etcd before the lease lapses there (a whole
// TTL after the last renewal answered was sent): with one etcd member hung,
// two of them landing on it as well still leaves one.
const maxStreams = 4

// renewer renews one lease over LeaseKeepAlive streams kept open from one
// renewal to the next: a renewal is then one message each way, where
// clientv3's KeepAliveOnce opens and closes a gRPC stream for each (and
// etcd starts two goroutines for it). At 100 shards x 3 that is 450 streams
// a second at the default TTL (docs/cluster-scale.md).
//
// Normally there is one stream. A renewal that is not answered for a while
// is not abandoned (a late answer still renews from its send time, and
// sending the same request again to an etcd that is merely slow doubles its
// load), but it is not the only chance either: the stream may sit on an
// etcd member that hangs (SIGSTOPped, swapping, a dead disk), whose
// connection gRPC's keep-alive only closes after its own timeout, longer
// than a short TTL. So the next renewal goes out on a new stream, which
// gRPC's round-robin balancer opens to another member, and whichever
// answers first renews the lease.
//
// Fencing needs to know when the renewal that etcd answered was sent (the
// lease cannot expire before then plus its TTL). Each stream has one
// request in flight at most, and its own send time: every response read
// from a stream is the answer to the one request sent on it since it opened
// or since its last response. A stream whose answer failed, or can no
// longer extend the lease, is closed, and its late answers are dropped.
//
// A renewer is used by one goroutine (keepAlive); each stream has a
// goroutine of its own that sends and receives.
type renewer struct {
	lc      pb.LeaseClient
	id      clientv3.LeaseID
	streams []*keepStream
	answers chan answer
}

// keepStream is one LeaseKeepAlive stream and its goroutine.
type keepStream struct {
	req    chan struct{} // a request to send; capacity 1
	cancel context.CancelFunc
	// sent is when the request in flight was sent (before it was handed to
	// the goroutine, so no later than the send itself); zero if none.
	sent time.Time
	// answered is when the stream last answered: an idle stream that
	// answered last is the one to send on.
	answered time.Time
	closed   bool
}

// answer is one response read from a stream, or the error that ended it.
type answer struct {
	s    *keepStream
	resp *pb.LeaseKeepAliveResponse
	err  error
}

func newRenewer(cli *clientv3.Client, id clientv3.LeaseID) *renewer {
	return &renewer{lc: clientv3.RetryLeaseClient(cli), id: id, answers: make(chan answer)}
}

// send sends a keep-alive at now on an idle stream, or on a new one if
// every stream waits for an answer; it reports false if maxStreams already
// wait.
func (r *renewer) send(ctx context.Context, now time.Time) bool {
	var idle *keepStream
	for _, s := range r.streams {
		if s.sent.IsZero() && (idle == nil || s.answered.After(idle.answered)) {
			idle = s
		}
	}
	if idle == nil {
		if len(r.streams) >= maxStreams {
			return false
		}
		idle = r.open(ctx)
	}
	idle.sent = now
	idle.req <- struct{}{}
	return true
}

// open starts a stream's goroutine. The stream is opened there, not here:
// with etcd unreachable, opening it waits for a connection, and keepAlive
// must go on counting the lease's time meanwhile.
func (r *renewer) open(ctx context.Context) *keepStream {
	sctx, cancel := context.WithCancel(ctx)
	s := &keepStream{req: make(chan struct{}, 1), cancel: cancel}
	r.streams = append(r.streams, s)
	deliver := func(a answer) bool {
		select {
		case r.answers <- a:
			return a.err == nil
		case <-sctx.Done():
			return false
		}
	}
	go func() {
		st, err := r.lc.LeaseKeepAlive(sctx)
		if err != nil {
			deliver(answer{s: s, err: clientv3.ContextError(sctx, err)})
			return
		}
		for {
			select {
			case <-s.req:
			case <-sctx.Done():
				return
			}
			if err := st.Send(&pb.LeaseKeepAliveRequest{ID: int64(r.id)}); err != nil {
				deliver(answer{s: s, err: clientv3.ContextError(sctx, err)})
				return
			}
			resp, err := st.Recv()
			if err != nil {
				err = clientv3.ContextError(sctx, err)
			}
			if !deliver(answer{s: s, resp: resp, err: err}) {
				return
			}
		}
	}()
	return s
}

// take accepts a, read from answers: the send time of the request it
// answers and etcd's answer to it (the TTL granted, 0 if the lease is
// gone). ok is false for an answer of a stream closed since, which is
// dropped. A stream whose answer is an error is closed; one that answered
// stays open for the next renewal, and any other idle stream is closed.
func (r *renewer) take(a answer, now time.Time) (sent time.Time, ttl int64, err error, ok bool) {
	s := a.s
	if s.closed || s.sent.IsZero() {
		return time.Time{}, 0, nil, false
	}
	sent = s.sent
	s.sent = time.Time{}
	if a.err != nil {
		r.closeStream(s)
		return sent, 0, a.err, true
	}
	s.answered = now
	for _, o := range append([]*keepStream(nil), r.streams...) {
		if o != s && o.sent.IsZero() {
			r.closeStream(o)
		}
	}
	return sent, a.resp.TTL, nil, true
}

// expire closes the streams whose request was sent at or before before:
// an answer to it could no longer extend the lease.
func (r *renewer) expire(before time.Time) {
	for _, s := range append([]*keepStream(nil), r.streams...) {
		if !s.sent.IsZero() && !s.sent.After(before) {
			r.closeStream(s)
		}
	}
}

func (r *renewer) closeStream(s *keepStream) {
	s.cancel()
	s.closed = true
	for i, o := range r.streams {
		if o == s {
			r.streams = append(r.streams[:i], r.streams[i+1:]...)
			break
		}
	}
}

// close ends every stream.
func (r *renewer) close() {
	for len(r.streams) > 0 {
		r.closeStream(r.streams[0])
	}
}
