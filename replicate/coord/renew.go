package coord

import (
	"context"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// renewer renews one lease over one LeaseKeepAlive stream, kept open from
// one renewal to the next: a renewal is then one message each way, where
// clientv3's KeepAliveOnce opens and closes a gRPC stream for each (and
// etcd starts two goroutines for it). At 100 shards x 3 that is 450 streams
// a second at the default TTL (docs/cluster-scale.md).
//
// Fencing needs to know when the renewal that etcd answered was sent (the
// lease cannot expire before then plus its TTL). One request is in flight
// at a time, and a renewal that fails or times out closes the stream, so a
// late answer can never be taken for the next request's: every response
// read is the answer to the one request sent since the stream opened or
// since the last response.
type renewer struct {
	lc     pb.LeaseClient
	id     clientv3.LeaseID
	stream pb.Lease_LeaseKeepAliveClient
	cancel context.CancelFunc
	recv   chan renewal
}

// renewal is one response read from the stream, or the error that ended it.
type renewal struct {
	resp *pb.LeaseKeepAliveResponse
	err  error
}

func newRenewer(cli *clientv3.Client, id clientv3.LeaseID) *renewer {
	return &renewer{lc: clientv3.RetryLeaseClient(cli), id: id}
}

// renew sends one keep-alive and waits up to timeout for its answer: the
// TTL etcd granted, 0 if the lease is gone.
func (r *renewer) renew(ctx context.Context, timeout time.Duration) (ttl int64, err error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	if r.stream == nil {
		sctx, cancel := context.WithCancel(ctx)
		st, err := r.lc.LeaseKeepAlive(sctx)
		if err != nil {
			cancel()
			return 0, clientv3.ContextError(ctx, err)
		}
		recv := make(chan renewal, 1)
		go func() {
			for {
				resp, err := st.Recv()
				select {
				case recv <- renewal{resp, err}:
				case <-sctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}()
		r.stream, r.cancel, r.recv = st, cancel, recv
	}
	if err := r.stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(r.id)}); err != nil {
		r.close()
		return 0, clientv3.ContextError(ctx, err)
	}
	select {
	case got := <-r.recv:
		if got.err != nil {
			r.close()
			return 0, clientv3.ContextError(ctx, got.err)
		}
		return got.resp.TTL, nil
	case <-t.C:
		r.close()
		return 0, context.DeadlineExceeded
	case <-ctx.Done():
		r.close()
		return 0, ctx.Err()
	}
}

// close ends the stream, if one is open; the next renew opens another.
func (r *renewer) close() {
	if r.cancel != nil {
		r.cancel()
	}
	r.stream, r.cancel, r.recv = nil, nil, nil
}
