package sim

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// probe times lease renewals: one lease of its own, renewed by
// KeepAliveOnce every probeEvery with coord's timeout of TTL/3. Each
// renewal opens a stream of its own, as coord's did until it kept one open
// (coord/renew.go), and as its first renewal on a new stream still does:
// the probe's latency is an upper bound of a member's. A member steps down when its
// renewals fail for a whole TTL, so renewal latency against TTL/3 is what
// decides whether a cluster of this size stays up.
type probe struct {
	mu     sync.Mutex
	at     []time.Time
	lat    []time.Duration // -1: failed (timed out or refused)
	cancel context.CancelFunc
	done   chan struct{}
}

const probeEvery = 100 * time.Millisecond

func startProbe(cli *clientv3.Client, ttl time.Duration) *probe {
	ctx, cancel := context.WithCancel(context.Background())
	p := &probe{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		var lease clientv3.LeaseID
		t := time.NewTicker(probeEvery)
		defer t.Stop()
		for ctx.Err() == nil {
			t0 := time.Now()
			rctx, rcancel := context.WithTimeout(ctx, ttl/3)
			var err error
			if lease == 0 {
				var g *clientv3.LeaseGrantResponse
				if g, err = cli.Grant(rctx, int64(ttl/time.Second)); err == nil {
					lease = g.ID
				}
			} else {
				var r *clientv3.LeaseKeepAliveResponse
				if r, err = cli.KeepAliveOnce(rctx, lease); err == nil && r.TTL <= 0 {
					lease = 0
				} else if err != nil {
					lease = 0 // expired or unknown: grant another next time
				}
			}
			rcancel()
			d := time.Since(t0)
			if err != nil {
				d = -1
			}
			if ctx.Err() == nil {
				p.mu.Lock()
				p.at, p.lat = append(p.at, t0), append(p.lat, d)
				p.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
	}()
	return p
}

func (p *probe) stop() {
	p.cancel()
	<-p.done
}

// between returns the renewals sent in [a, b): their latencies and how many
// failed.
func (p *probe) between(a, b time.Time) (lat []time.Duration, failed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, t := range p.at {
		if t.Before(a) || !t.Before(b) {
			continue
		}
		if p.lat[i] < 0 {
			failed++
		} else {
			lat = append(lat, p.lat[i])
		}
	}
	return lat, failed
}
