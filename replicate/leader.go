package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logkv/logkv/replicate/commitlog"
	"github.com/logkv/logkv/replicate/transport"
	"github.com/logkv/logkv/replicate/wire"
)

// doneCtx is a context that is already done: Reader.Next with it returns the
// records already durable without waiting.
var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// Follower connection states, as reported in FollowerStatus.State.
const (
	StateHandshake    = "handshake"
	StateResync       = "resync"
	StateStreaming    = "streaming"
	StateDisconnected = "disconnected"
	StateConnecting   = "connecting"
)

// leader is the leader side of replication.
type leader struct {
	n      *Replica
	ln     transport.Listener
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	peers map[string]*peer
	acked chan struct{} // closed and replaced on every ack
}

// peer is what the leader knows of one follower.
type peer struct {
	id      string
	state   atomic.Pointer[string]
	written atomic.Uint64
	durable atomic.Uint64
	applied atomic.Uint64
	// need is the first seq the follower still needs from the log; the log
	// is kept from there unless the follower is marked for resync.
	need       atomic.Uint64
	needResync atomic.Bool
	resyncs    atomic.Uint64
	sentBytes  atomic.Int64
	sentFrames atomic.Int64
	applyRate  atomic.Uint64 // float64 bits, records/s

	// Guarded by leader.mu.
	stream      transport.Stream
	rateAt      time.Time
	rateApplied uint64
	// leftAt is when the follower's last connection ended (zero while
	// connected): retain forgets a follower gone for
	// Config.ForgetFollowerAfter.
	leftAt time.Time
}

func (p *peer) setState(s string) { p.state.Store(&s) }

func newLeader(n *Replica) (*leader, error) {
	l := &leader{n: n, peers: map[string]*peer{}, acked: make(chan struct{})}
	// A new leadership knows no follower's log yet: nothing is known on a
	// quorum until they ack (every leader before this one has stopped).
	n.quorumSeq.Store(0)
	l.ctx, l.cancel = context.WithCancel(n.ctx)
	if n.cfg.ListenAddr != "" {
		ln, err := n.cfg.Transport.Listen(n.cfg.ListenAddr)
		if err != nil {
			return nil, err
		}
		l.ln = ln
		l.wg.Go(l.acceptLoop)
	}
	return l, nil
}

func (l *leader) stop() {
	l.cancel()
	if l.ln != nil {
		l.ln.Close()
	}
	l.wg.Wait()
	l.n.quorumSeq.Store(0) // leads no more: no read may rely on it
}

func (l *leader) acceptLoop() {
	for {
		s, err := l.ln.Accept(l.ctx)
		if err != nil {
			return
		}
		l.wg.Go(func() { l.serve(s) })
	}
}

// serve runs one follower connection: handshake, catch-up or resync, then
// streaming until the connection or the leader ends.
func (l *leader) serve(s transport.Stream) {
	log := l.n.cfg.Logger.With("peer", s.Peer())
	defer s.Close()
	stop := context.AfterFunc(l.ctx, func() { s.Close() })
	defer stop()
	r := wire.NewReader(s)
	defer r.Close()
	w := wire.NewWriter(s, l.n.cfg.Compress)

	timer := time.AfterFunc(l.n.cfg.HandshakeTimeout, func() { s.Close() })
	f, err := r.ReadFrame()
	timer.Stop()
	if err == nil && f.Type != wire.TypeHello {
		err = fmt.Errorf("%w: %s frame before hello", wire.ErrProtocol, f.Type)
	}
	var h wire.Hello
	if err == nil {
		h, err = wire.DecodeHello(f.Payload)
	}
	if err != nil {
		log.Warn("follower handshake failed", "err", err)
		w.WriteFrame(wire.TypeRefuse, wire.AppendRefuse(nil, err.Error()))
		return
	}
	if peer := s.Peer(); h.ID != peer {
		// The transport authenticated the peer (over QUIC, by its
		// certificate); the Hello's id is only what it says. Taking the
		// id on its word would let any node of the CA disconnect another
		// follower and take its place in the quorum and in retention.
		err := fmt.Errorf("%w: the follower says it is %q but its certificate names %q; give each node its own certificate (kvnode certs -node NAME) and do not set another node_id", ErrIdentity, h.ID, peer)
		log.Error("refusing a follower that claims another node's id", "claimed", h.ID, "err", err)
		w.WriteFrame(wire.TypeRefuse, wire.AppendRefuse(nil, err.Error()))
		return
	}
	log = log.With("follower", h.ID)
	epoch := l.n.log.Epoch()
	if len(h.History) > 0 && h.History[len(h.History)-1].Epoch > epoch {
		err := fmt.Errorf("%w: follower %s is at epoch %d, this leader at %d", ErrDeposed, h.ID, h.History[len(h.History)-1].Epoch, epoch)
		log.Error("refusing a follower from a newer epoch", "err", err)
		w.WriteFrame(wire.TypeRefuse, wire.AppendRefuse(nil, err.Error()))
		return
	}
	p := l.register(h.ID, s)
	defer l.unregister(p, s)

	rd, err := l.start(p, h, w, log)
	if err != nil {
		if !errors.Is(err, transport.ErrClosed) {
			log.Warn("follower start failed", "err", err)
		}
		return
	}
	defer rd.Close()
	p.setState(StateStreaming)

	l.wg.Go(func() {
		if err := l.readAcks(p, r); err != nil && l.ctx.Err() == nil {
			log.Warn("follower ack stream ended", "err", err)
		}
		s.Close()
	})
	if err := l.send(p, rd, w); err != nil && l.ctx.Err() == nil {
		if errors.Is(err, commitlog.ErrTrimmed) {
			p.needResync.Store(true)
			log.Warn("follower fell behind the retained log; it will be resynced", "err", err)
		} else {
			log.Info("follower stream ended", "err", err)
		}
	}
}

// start answers the Hello: from the fork point if the log still holds what
// the follower lacks, with a full resync otherwise. It returns a reader
// positioned at the first record to stream.
func (l *leader) start(p *peer, h wire.Hello, w *wire.Writer, log *slog.Logger) (*commitlog.Reader, error) {
	lg := l.n.log
	fork := commitlog.ForkPoint(lg.History(), lg.DurableSeq(), h.History, h.LastSeq)
	if !p.needResync.Load() && h.Applied <= fork && !l.resyncIsCheaper(fork, log) {
		rd, err := lg.NewReader(fork + 1)
		if err == nil {
			p.need.Store(fork + 1)
			p.written.Store(fork)
			p.durable.Store(min(fork, p.durable.Load()))
			p.applied.Store(h.Applied)
			l.recount()
			if fork < h.LastSeq {
				log.Info("follower's log diverged; it cuts its tail", "fork", fork, "follower_last", h.LastSeq)
			}
			log.Info("follower catches up from the log", "from", fork+1)
			if err := w.WriteFrame(wire.TypeWelcome, wire.AppendWelcome(nil, wire.Welcome{Mode: wire.ModeStream, ID: l.n.cfg.ID, Seq: fork, History: lg.History(), SyncDelay: l.followerSyncDelay(), HasSyncDelay: true})); err != nil {
				rd.Close()
				return nil, err
			}
			return rd, nil
		}
		if !errors.Is(err, commitlog.ErrTrimmed) {
			return nil, err
		}
	}

	// Full resync. The snapshot and the retention mark are taken together
	// under l.mu, which retain also holds, so the log after the snapshot
	// stays until the follower has it.
	p.setState(StateResync)
	l.mu.Lock()
	snap, err := l.n.Engine().NewSnapshot()
	if err != nil {
		l.mu.Unlock()
		return nil, err
	}
	seq := snap.Seq()
	rd, err := lg.NewReader(seq + 1)
	if err == nil {
		p.need.Store(seq + 1)
		p.needResync.Store(false)
	}
	l.mu.Unlock()
	defer snap.Close()
	if err != nil {
		return nil, err
	}
	p.durable.Store(0)
	p.applied.Store(0)
	p.written.Store(0)
	p.resyncs.Add(1)
	l.recount()
	log.Info("follower gets a full resync", "snapshot_seq", seq, "follower_last", h.LastSeq, "follower_applied", h.Applied, "fork", fork)
	err = w.WriteFrame(wire.TypeWelcome, wire.AppendWelcome(nil, wire.Welcome{Mode: wire.ModeResync, ID: l.n.cfg.ID, Seq: seq, History: l.n.historyUpTo(seq), SyncDelay: l.followerSyncDelay(), HasSyncDelay: true}))
	if err == nil {
		var keys uint64
		keys, err = writeSnapshot(w, snap)
		log.Info("snapshot sent", "seq", seq, "keys", keys, "err", err)
	}
	if err != nil {
		rd.Close()
		return nil, err
	}
	return rd, nil
}

// followerSyncDelay is the wait before each fsync this leader asks of its
// followers (Config.FollowerSyncDelay, at most wire.MaxSyncDelay; negative:
// none).
func (l *leader) followerSyncDelay() time.Duration {
	return max(l.n.cfg.FollowerSyncDelay, 0)
}

// resyncIsCheaper reports whether a full resync would catch the follower up
// faster than the log after fork (see Config.ResyncBacklogRatio).
func (l *leader) resyncIsCheaper(fork uint64, log *slog.Logger) bool {
	cfg := &l.n.cfg
	if cfg.ResyncBacklogRatio < 0 {
		return false
	}
	backlog := l.n.log.SizeFrom(fork + 1)
	if backlog < cfg.ResyncMinBacklog {
		return false
	}
	m := l.n.Engine().Metrics()
	data := m.DiskBytes + m.MemBytes
	if float64(backlog) < cfg.ResyncBacklogRatio*float64(data) {
		return false
	}
	log.Info("the follower's backlog is large against the data: a full resync is faster than the log", "backlog_bytes", backlog, "engine_bytes", data, "ratio", cfg.ResyncBacklogRatio)
	return true
}

// send streams records from rd, batched into frames, with heartbeats when
// idle, and paced by Config.ShipDelay. Only this follower's goroutine blocks
// on a slow follower.
func (l *leader) send(p *peer, rd *commitlog.Reader, w *wire.Writer) error {
	var enc wire.RecordsEncoder
	var buf []byte
	hb := l.n.cfg.Heartbeat
	pace := time.NewTimer(time.Hour)
	pace.Stop()
	defer pace.Stop()
	for {
		ctx, cancel := context.WithTimeout(l.ctx, hb)
		rec, err := rd.Next(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			buf = wire.AppendHeartbeat(buf[:0], wire.Heartbeat{LastSeq: l.n.log.DurableSeq(), UnixNano: time.Now().UnixNano()})
			if err := w.WriteFrame(wire.TypeHeartbeat, buf); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		enc.Reset()
		enc.Add(rec)
		var nextErr error
		for enc.Size() < l.n.cfg.MaxFrameBytes {
			rec, err := rd.Next(doneCtx)
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					nextErr = err
				}
				break
			}
			enc.Add(rec)
		}
		buf = enc.Payload(buf)
		before := w.Written()
		if err := w.WriteFrame(wire.TypeRecords, buf); err != nil {
			return err
		}
		p.sentBytes.Add(w.Written() - before)
		p.sentFrames.Add(1)
		if nextErr != nil {
			return nextErr
		}
		if d := l.n.cfg.ShipDelay; d > 0 && enc.Size() < l.n.cfg.MaxFrameBytes {
			// Let the next records gather, so that one frame carries all
			// that the leader makes durable meanwhile. A full frame means
			// the follower is behind: the rest goes at once.
			pace.Reset(d)
			select {
			case <-pace.C:
			case <-l.ctx.Done():
				return l.ctx.Err()
			}
		}
	}
}

// readAcks reads the follower's acks until the stream ends.
func (l *leader) readAcks(p *peer, r *wire.Reader) error {
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return err
		}
		if f.Type != wire.TypeAck {
			return fmt.Errorf("%w: %s frame from a follower", wire.ErrProtocol, f.Type)
		}
		a, err := wire.DecodeAck(f.Payload)
		if err != nil {
			return err
		}
		p.written.Store(a.Written)
		p.durable.Store(a.Durable)
		p.applied.Store(a.Applied)
		if a.Durable+1 > p.need.Load() {
			p.need.Store(a.Durable + 1)
		}
		l.mu.Lock()
		now := time.Now()
		if dt := now.Sub(p.rateAt); dt >= 500*time.Millisecond {
			if !p.rateAt.IsZero() && a.Applied >= p.rateApplied {
				p.applyRate.Store(math.Float64bits(float64(a.Applied-p.rateApplied) / dt.Seconds()))
			}
			p.rateAt, p.rateApplied = now, a.Applied
		}
		l.recountLocked()
		l.mu.Unlock()
	}
}

func (l *leader) register(id string, s transport.Stream) *peer {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.peers[id]
	if p == nil {
		p = &peer{id: id}
		l.peers[id] = p
	}
	if p.stream != nil {
		// A follower reconnecting before the leader noticed it left.
		p.stream.Close()
	}
	p.stream = s
	p.leftAt = time.Time{}
	p.setState(StateHandshake)
	return p
}

func (l *leader) unregister(p *peer, s transport.Stream) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.stream == s {
		p.stream = nil
		p.leftAt = time.Now()
		p.setState(StateDisconnected)
	}
}

// forget drops the followers whose last connection ended at least
// Config.ForgetFollowerAfter before now. Each one kept pins the log from
// what it needs (up to RetentionBytes), and a follower that is gone for good
// (decommissioned, or rebuilt under another name) would pin it forever. One
// that returns is a stranger: it catches up from the log if the log still
// holds what it lacks, and is resynced otherwise. l.mu is held.
func (l *leader) forget(now time.Time) {
	after := l.n.cfg.ForgetFollowerAfter
	if after < 0 {
		return
	}
	for id, p := range l.peers {
		if p.stream != nil || p.leftAt.IsZero() {
			continue
		}
		if gone := now.Sub(p.leftAt); gone >= after {
			delete(l.peers, id)
			l.recountLocked()
			l.n.cfg.Logger.Warn("follower forgotten: disconnected for longer than replication.forget_follower_after; the log is no longer kept for it, and it will be resynced if it returns and the log no longer holds what it lacks",
				"follower", id, "disconnected", gone.Round(time.Second), "forget_after", after, "need", p.need.Load())
		}
	}
}

// retain returns the seq before which the log may be trimmed, at most upTo:
// the oldest record a follower still needs, except followers whose need
// would keep more than RetentionBytes, which are marked for a full resync
// and disconnected. It first forgets followers disconnected for longer than
// ForgetFollowerAfter.
func (l *leader) retain(upTo uint64) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forget(time.Now())
	to := upTo
	for _, p := range l.peers {
		if p.needResync.Load() {
			continue
		}
		need := p.need.Load()
		if need >= to {
			continue
		}
		if size := l.n.log.SizeFrom(need); size > l.n.cfg.RetentionBytes {
			p.needResync.Store(true)
			l.n.cfg.Logger.Warn("follower beyond the retention cap; marked for full resync", "follower", p.id, "need", need, "bytes", size, "cap", l.n.cfg.RetentionBytes)
			if p.stream != nil {
				p.stream.Close()
			}
			continue
		}
		to = need
	}
	return to
}
