package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logkv/logkv/replicate/coord"
)

func (s *sim) say(format string, a ...any) {
	fmt.Fprintf(s.progress, time.Now().UTC().Format("15:04:05 ")+format+"\n", a...)
}

func (s *sim) run(ctx context.Context, rep *Report) error {
	cfg := s.cfg
	for i := range cfg.Shards {
		s.shards = append(s.shards, fmt.Sprintf("s%04d", i))
	}
	// Start: every member at once, as after a power cut of the whole
	// cluster, the worst start etcd sees; or StartRate a second, as a
	// rolling start.
	s.say("starting %d shards x %d members against %s", cfg.Shards, cfg.Members, s.etcd.Endpoint)
	c0, err := s.sample(ctx)
	if err != nil {
		return err
	}
	// The start's cost, measured to its end or to the wait that failed:
	// what etcd did while the members could not agree is the finding.
	converged := false
	defer func() {
		if converged {
			return
		}
		if c1, err := s.sample(ctx); err == nil {
			rep.StartCost = s.cost(c0, c1)
		}
	}()
	t0 := time.Now()
	for _, sh := range s.shards {
		for j := range cfg.Members {
			m, err := startMember(s.etcd.Endpoint, cfg.Cluster, sh, fmt.Sprintf("%s-m%d", sh, j), &cfg, s.log)
			if err != nil {
				return err
			}
			s.members = append(s.members, m)
			if cfg.StartRate > 0 {
				time.Sleep(time.Second / time.Duration(cfg.StartRate)) // the start's pace is the workload
			}
		}
	}
	if err := s.await(ctx, "every shard elects one leader", s.oneLeaderEach); err != nil {
		return err
	}
	// The map: node's evenSlotMap's ranges, written as kvnode cluster init
	// writes it (CreateRevision 0).
	per := float64(16384) / float64(cfg.Shards)
	for i := range cfg.Shards {
		first, last := int(float64(i)*per+0.5), int(float64(i+1)*per+0.5)-1
		if i == 0 {
			first = 0
		}
		if i == cfg.Shards-1 {
			last = 16383
		}
		for sl := first; sl <= last; sl++ {
			s.owner[sl] = uint16(i)
		}
	}
	if _, err := s.writeMap(ctx); err != nil {
		return err
	}
	if err := s.await(ctx, "every member reads the map and every leader", s.routed); err != nil {
		return fmt.Errorf("%w: %s", err, s.lagging())
	}
	rep.Start = time.Since(t0)
	c1, err := s.sample(ctx)
	if err != nil {
		return err
	}
	rep.StartCost = s.cost(c0, c1)
	converged = true
	s.say("converged in %v", rep.Start.Round(time.Millisecond))

	// Quiet phase.
	c0, err = s.sample(ctx)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(cfg.Steady):
	}
	c1, err = s.sample(ctx)
	if err != nil {
		return err
	}
	rep.Steady = s.cost(c0, c1)
	rep.Watchers = c1.m.Sum("etcd_debugging_mvcc_watcher_total")
	rep.WatchStreams = c1.m.Sum("etcd_debugging_mvcc_watch_stream_total")
	s.say("quiet: %+v", rep.Steady)

	// Map updates, each a move's flip of 8 slots to the next shard.
	if cfg.MapUpdates > 0 {
		c0, err := s.sample(ctx)
		if err != nil {
			return err
		}
		var seen, all []time.Duration
		timeouts := 0
		for range cfg.MapUpdates {
			b := s.rng.IntN(16384 / 8)
			for sl := b * 8; sl < b*8+8; sl++ {
				s.owner[sl] = (s.owner[sl] + 1) % uint16(cfg.Shards)
			}
			w0 := time.Now()
			v, err := s.writeMap(ctx)
			if err != nil {
				return err
			}
			err = s.await(ctx, "", func() bool { return s.allSeenMap(v) })
			if err != nil && ctx.Err() != nil {
				return err
			}
			last := time.Duration(0)
			for _, m := range s.members {
				if at, ok := m.mapSeen(v); ok {
					d := at.Sub(w0)
					seen = append(seen, d)
					last = max(last, d)
				} else {
					timeouts++
				}
			}
			all = append(all, last)
			if cfg.MapGap > 0 {
				time.Sleep(cfg.MapGap) // the pace of map changes is the workload, not a wait
			}
		}
		c1, err := s.sample(ctx)
		if err != nil {
			return err
		}
		rep.Map = s.cost(c0, c1)
		rep.MapUpdates = cfg.MapUpdates
		rep.MapSeen = latency(seen, timeouts)
		rep.MapAll = latency(all, 0)
		u := float64(cfg.MapUpdates)
		rep.EventsPerMap = (c1.m.Sum("etcd_debugging_mvcc_events_total") - c0.m.Sum("etcd_debugging_mvcc_events_total")) / u
		rep.WatchReqPerMap = (c1.m.Sum("grpc_server_msg_received_total", `grpc_method="Watch"`) - c0.m.Sum("grpc_server_msg_received_total", `grpc_method="Watch"`)) / u
		rep.ReadsPerMap = (c1.m.Sum("grpc_server_handled_total", `grpc_method="Txn"`) - c0.m.Sum("grpc_server_handled_total", `grpc_method="Txn"`)) / u
		s.say("map: %d updates, seen %+v, all %+v", cfg.MapUpdates, rep.MapSeen, rep.MapAll)
	}

	// Leader kills.
	if cfg.Kills > 0 {
		c0, err := s.sample(ctx)
		if err != nil {
			return err
		}
		var elect, seen []time.Duration
		timeouts := 0
		var rates []float64
		for range cfg.Kills {
			e, sn, to, rate, err := s.killRound(ctx)
			if err != nil {
				return err
			}
			elect, seen, timeouts = append(elect, e...), append(seen, sn...), timeouts+to
			if rate > 0 {
				rates = append(rates, rate)
			}
		}
		c1, err := s.sample(ctx)
		if err != nil {
			return err
		}
		rep.Kill = s.cost(c0, c1)
		rep.Kills = cfg.Kills * cfg.KillBatch
		rep.ElectAfterKill = latency(elect, timeouts)
		rep.SeenAfterKill = latency(seen, timeouts)
		for _, r := range rates {
			rep.ElectionsPerSec += r / float64(len(rates))
		}
		s.say("kills: %d, elect %+v, seen %+v", rep.Kills, rep.ElectAfterKill, rep.SeenAfterKill)
	}
	if err := s.await(ctx, "every shard has one leader at the end", s.oneLeaderEach); err != nil {
		return err
	}
	end, err := s.sample(ctx)
	if err != nil {
		return err
	}
	rep.DBSize = end.m.Sum("etcd_mvcc_db_total_size_in_bytes")
	rep.DBInUse = end.m.Sum("etcd_mvcc_db_total_size_in_use_in_bytes")
	return nil
}

// await polls cond every 10 ms until it holds or cfg.Converge passes.
func (s *sim) await(ctx context.Context, what string, cond func() bool) error {
	deadline := time.Now().Add(s.cfg.Converge)
	for !cond() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			if what == "" {
				return errTimeout
			}
			return fmt.Errorf("sim: %s: not within %v (raise -converge, or fewer shards: this is the limit)", what, s.cfg.Converge)
		}
		time.Sleep(10 * time.Millisecond) // polling the members' state, which has no channel for "all agree"
	}
	return nil
}

var errTimeout = errors.New("sim: timed out")

// oneLeaderEach reports whether every shard has exactly one member that
// leads, and it is the one etcd names, and every member of the shard
// follows it.
func (s *sim) oneLeaderEach() bool {
	for i := range s.shards {
		leaders := 0
		var id string
		group := s.members[i*s.cfg.Members : (i+1)*s.cfg.Members]
		for _, m := range group {
			if m.coord.Leading() != 0 {
				leaders++
				id = m.id
			}
		}
		if leaders != 1 {
			return false
		}
		for _, m := range group {
			if l := m.coord.Leader(); l == nil || l.ID != id {
				return false
			}
		}
	}
	return true
}

// routed reports whether every member's router read the map as last
// written and every shard's current leader.
func (s *sim) routed() bool {
	if !s.allSeenMap(s.mapVer) {
		return false
	}
	for i, sh := range s.shards {
		var epoch uint64
		for _, m := range s.members[i*s.cfg.Members : (i+1)*s.cfg.Members] {
			epoch = max(epoch, m.coord.Leading())
		}
		if epoch == 0 {
			return false
		}
		for _, m := range s.members {
			if _, ok := m.leaderSeen(sh, epoch-1); !ok {
				return false
			}
		}
	}
	return true
}

// lagging says how far the routers are from routed.
func (s *sim) lagging() string {
	noMap, missing, reads := 0, 0, int64(0)
	for _, m := range s.members {
		if _, ok := m.mapSeen(s.mapVer); !ok {
			noMap++
		}
		m.mu.Lock()
		for _, sh := range s.shards {
			if len(m.leaders[sh]) == 0 {
				missing++
			}
		}
		m.mu.Unlock()
		reads += m.reads.Load()
	}
	return fmt.Sprintf("%d of %d routers have not read map version %d; %d (router, shard) pairs know no leader; %d routing reads so far", noMap, len(s.members), s.mapVer, missing, reads)
}

func (s *sim) allSeenMap(v int64) bool {
	for _, m := range s.members {
		if _, ok := m.mapSeen(v); !ok {
			return false
		}
	}
	return true
}

// writeMap writes s.owner as a slot map (node/slots.go's format: ranges of
// [first, last, shard index], coalesced), in one transaction on the map's
// version as every writer of the map does, and returns the new version.
func (s *sim) writeMap(ctx context.Context) (int64, error) {
	type mapJSON struct {
		V      int         `json:"v"`
		Shards []string    `json:"shards"`
		Ranges [][3]uint16 `json:"ranges"`
	}
	j := mapJSON{V: 1, Shards: s.shards}
	first := 0
	for sl := 1; sl <= 16384; sl++ {
		if sl == 16384 || s.owner[sl] != s.owner[first] {
			j.Ranges = append(j.Ranges, [3]uint16{uint16(first), uint16(sl - 1), s.owner[first]})
			first = sl
		}
	}
	b, err := json.Marshal(j)
	if err != nil {
		return 0, err
	}
	key := coord.SlotsKey(s.cfg.Cluster)
	cmp := clientv3.Compare(clientv3.ModRevision(key), "=", s.mapVer)
	if s.mapVer == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	}
	resp, err := s.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return 0, fmt.Errorf("sim: write the slot map: %w", err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("sim: the slot map %s changed under the simulation (another writer?): use a cluster name of its own", key)
	}
	s.mapVer = resp.Header.Revision
	return s.mapVer, nil
}

// killRound kills the leaders of KillBatch shards at once, as SIGKILL does
// (their leases expire), waits for each shard's successor and for every
// router to read it, then restarts the killed members. It returns each
// shard's time to its successor's Lead and to every router reading it, the
// waits that timed out, and the batch's elections per second.
func (s *sim) killRound(ctx context.Context) (elect, seen []time.Duration, timeouts int, rate float64, err error) {
	picked := s.rng.Perm(len(s.shards))[:s.cfg.KillBatch]
	type victim struct {
		shard int
		idx   int // in s.members
		epoch uint64
	}
	var vs []victim
	for _, sh := range picked {
		for k := sh * s.cfg.Members; k < (sh+1)*s.cfg.Members; k++ {
			if e := s.members[k].coord.Leading(); e != 0 {
				vs = append(vs, victim{sh, k, e})
			}
		}
	}
	dead := map[int]bool{}
	t0 := time.Now()
	for _, v := range vs {
		s.members[v.idx].stop(true)
		dead[v.idx] = true
	}
	// Successor: a member of the shard leading a newer epoch.
	successor := func(v victim) (time.Time, uint64, bool) {
		for k := v.shard * s.cfg.Members; k < (v.shard+1)*s.cfg.Members; k++ {
			if k == v.idx {
				continue
			}
			if e := s.members[k].coord.Leading(); e > v.epoch {
				at, ok := s.members[k].rep.leadTime()
				return at, e, ok
			}
		}
		return time.Time{}, 0, false
	}
	err = s.await(ctx, "", func() bool {
		for _, v := range vs {
			if _, _, ok := successor(v); !ok {
				return false
			}
			for k, m := range s.members {
				if dead[k] {
					continue
				}
				if _, ok := m.leaderSeen(s.shards[v.shard], v.epoch); !ok {
					return false
				}
			}
		}
		return true
	})
	if err != nil && ctx.Err() != nil {
		return nil, nil, 0, 0, err
	}
	var lastLead time.Time
	for _, v := range vs {
		at, _, ok := successor(v)
		if !ok {
			timeouts++
			continue
		}
		elect = append(elect, at.Sub(t0))
		if at.After(lastLead) {
			lastLead = at
		}
		var worst time.Duration
		all := true
		for k, m := range s.members {
			if dead[k] {
				continue
			}
			sa, ok := m.leaderSeen(s.shards[v.shard], v.epoch)
			if !ok {
				all = false
				break
			}
			worst = max(worst, sa.Sub(t0))
		}
		if all {
			seen = append(seen, worst)
		}
	}
	if n := len(elect); n > 0 && lastLead.After(t0) {
		rate = float64(n) / lastLead.Sub(t0).Seconds()
	}
	// Restart the killed members as a restarted kvnode rejoins: same id,
	// new lease, following the new leader.
	for _, v := range vs {
		old := s.members[v.idx]
		m, err := startMember(s.etcd.Endpoint, s.cfg.Cluster, old.shard, old.id, &s.cfg, s.log)
		if err != nil {
			return nil, nil, 0, 0, err
		}
		s.members[v.idx] = m
	}
	if err := s.await(ctx, "every shard has one leader after the restarts", s.oneLeaderEach); err != nil {
		return nil, nil, 0, 0, err
	}
	return elect, seen, timeouts, rate, nil
}

// stopAll stops every member, revoking its lease.
func (s *sim) stopAll() {
	done := make(chan struct{}, len(s.members))
	for _, m := range s.members {
		go func() {
			m.stop(false)
			done <- struct{}{}
		}()
	}
	for range s.members {
		<-done
	}
	s.members = nil
}

// sampleAt is etcd's metrics and process at one moment.
type sampleAt struct {
	at   time.Time
	m    Metrics
	proc ProcStat
	ok   bool // proc was read
}

func (s *sim) sample(ctx context.Context) (sampleAt, error) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := Scrape(sctx, s.etcd.Endpoint)
	if err != nil {
		return sampleAt{}, fmt.Errorf("sim: read etcd's metrics: %w", err)
	}
	sa := sampleAt{at: time.Now(), m: m}
	if s.etcd.Pid != 0 {
		p, err := ReadProc(s.etcd.Pid)
		if err != nil {
			return sampleAt{}, fmt.Errorf("sim: read etcd's /proc (pid %d): %w", s.etcd.Pid, err)
		}
		sa.proc, sa.ok = p, true
	}
	return sa, nil
}

// cost is the cost between two samples, with the probe's renewals.
func (s *sim) cost(a, b sampleAt) Cost {
	c := costOf(a, b)
	if s.probe != nil {
		lat, failed := s.probe.between(a.at, b.at)
		c.Renew = latency(lat, failed)
	}
	return c
}

func costOf(a, b sampleAt) Cost {
	secs := b.at.Sub(a.at).Seconds()
	rate := func(name string, labels ...string) float64 {
		return (b.m.Sum(name, labels...) - a.m.Sum(name, labels...)) / secs
	}
	c := Cost{
		Seconds:        secs,
		KeepAlivesPerS: rate("grpc_server_msg_received_total", `grpc_method="LeaseKeepAlive"`),
		PutsPerS:       rate("grpc_server_handled_total", `grpc_method="Put"`),
		TxnsPerS:       rate("grpc_server_handled_total", `grpc_method="Txn"`),
		RangesPerS:     rate("grpc_server_handled_total", `grpc_method="Range"`),
		WatchReqPerS:   rate("grpc_server_msg_received_total", `grpc_method="Watch"`),
		EventsPerS:     rate("etcd_debugging_mvcc_events_total"),
		ProposalsPerS:  rate("etcd_server_proposals_committed_total"),
		SlowWatchers:   b.m.Sum("etcd_debugging_mvcc_slow_watcher_total"),
	}
	if n := b.m.Sum("etcd_disk_wal_fsync_duration_seconds_count") - a.m.Sum("etcd_disk_wal_fsync_duration_seconds_count"); n > 0 {
		c.FsyncMeanMs = (b.m.Sum("etcd_disk_wal_fsync_duration_seconds_sum") - a.m.Sum("etcd_disk_wal_fsync_duration_seconds_sum")) / n * 1000
	}
	if a.ok && b.ok {
		c.CPUPercent = (b.proc.CPU - a.proc.CPU).Seconds() / secs * 100
		c.RSS = b.proc.RSS
	}
	return c
}
