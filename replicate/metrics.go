package replicate

import (
	"math"
	"slices"
	"strings"
	"time"
)

// FollowerStatus is the leader's view of one follower.
type FollowerStatus struct {
	ID    string
	State string // StateHandshake, StateResync, StateStreaming or StateDisconnected
	// Written, Durable and Applied are the seqs the follower last acked.
	Written, Durable, Applied uint64
	// LagRecords is how many of the leader's durable records the follower
	// has not applied; LagBytes their size in the log; LagSeconds how long
	// ago the oldest of them was written.
	LagRecords uint64
	LagBytes   int64
	LagSeconds float64
	// ApplyRate is the follower's recent apply rate, records per second.
	ApplyRate float64
	// Resyncs counts full resyncs sent to it; NeedResync says it is marked
	// for one (it fell past the retention cap).
	Resyncs    uint64
	NeedResync bool
	// SentBytes counts the record frame bytes sent to it, SentFrames the
	// frames (their ratio to the records shows how Config.ShipDelay batches).
	SentBytes  int64
	SentFrames int64
}

// Followers returns the leader's view of every follower that connected since
// it became leader, sorted by id; nil on a follower.
func (n *Replica) Followers() []FollowerStatus {
	n.roleMu.Lock()
	l := n.leader
	n.roleMu.Unlock()
	if l == nil {
		return nil
	}
	last := n.log.DurableSeq()
	l.mu.Lock()
	var out []FollowerStatus
	for _, p := range l.peers {
		s := FollowerStatus{
			ID: p.id, State: *p.state.Load(),
			Written: p.written.Load(), Durable: p.durable.Load(), Applied: p.applied.Load(),
			ApplyRate:  math.Float64frombits(p.applyRate.Load()),
			Resyncs:    p.resyncs.Load(),
			NeedResync: p.needResync.Load(),
			SentBytes:  p.sentBytes.Load(),
			SentFrames: p.sentFrames.Load(),
		}
		if s.Applied < last {
			s.LagRecords = last - s.Applied
			var age time.Duration
			s.LagBytes, age = n.progress.lag(s.Applied, last)
			s.LagSeconds = age.Seconds()
		}
		out = append(out, s)
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b FollowerStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Status is a node's own view of its replication.
type Status struct {
	Role  Role
	Epoch uint64
	// LastSeq is the last record in the log, DurableSeq the last durable,
	// Applied the last applied to the engine.
	LastSeq, DurableSeq, Applied uint64
	// LogFirstSeq and LogBytes describe the retained log.
	LogFirstSeq uint64
	LogBytes    int64
	// CheckpointSeq is the seq the engine's durable state covers: the last
	// checkpoint (Config.Checkpoint) or engine sync; recovery replays the log
	// after it.
	CheckpointSeq uint64
	// Follower only: its connection state, the leader's last seq as last
	// heard, the number of full resyncs received and of connections made.
	State      string
	LeaderLast uint64
	Resyncs    uint64
	Connects   uint64
	// SyncDelay is the wait before each fsync of the log, as the leader
	// asked (see Config.FollowerSyncDelay).
	SyncDelay time.Duration
}

// Status returns the node's view of itself.
func (n *Replica) Status() Status {
	s := Status{
		Epoch:       n.log.Epoch(),
		LastSeq:     n.log.LastSeq(),
		DurableSeq:  n.log.DurableSeq(),
		Applied:     n.applied.Load(),
		LogFirstSeq: n.log.FirstSeq(),
		LogBytes:    n.log.Size(),

		CheckpointSeq: n.checkpointSeq.Load(),
	}
	n.roleMu.Lock()
	s.Role = n.Role()
	f := n.follower
	n.roleMu.Unlock()
	if f != nil {
		s.State = *f.state.Load()
		s.LeaderLast = f.leaderLast.Load()
		s.Resyncs = f.resyncs.Load()
		s.Connects = f.connects.Load()
		s.SyncDelay = time.Duration(f.syncDelay.Load())
	}
	return s
}
