package history

// Automatic failover (Config.Auto, issue #17). The nodes join a cluster
// through a real etcd (-etcd, -cluster) and elect their leader themselves;
// the nemesis only ever hurts the leader and never promotes:
//
//	etcd (own process; own namespace with a netlab)
//	   <- kvnode x3 (-etcd -cluster; the leader holds a lease-bound key)
//	nemesis: kill-leader | pause-leader | partition-leader
//	   -> waits for a new epoch in etcd (watchLeaders), reads the new
//	      leader's keys (LossAt), heals
//	clients -> SENTINEL get-master-addr-by-name on any node -> the leader
//
// Every new leader key in etcd (a new CreateRevision: an epoch) is an
// election; an election that names another node than the one before is a
// leader change. A run that sees no leader change fails: it tested nothing.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/logkv/logkv/replicate/coord"
)

// Faults of the automatic-failover nemesis. Each hurts the current leader.
const (
	// FaultKillLeader SIGKILLs the leader and restarts it once another
	// node leads (it rejoins as a follower by itself).
	FaultKillLeader = "kill-leader"
	// FaultPauseLeader SIGSTOPs the leader until another node leads (its
	// lease lapses meanwhile), then SIGCONTs it.
	FaultPauseLeader = "pause-leader"
	// FaultPartitionLeader cuts the leader off from a random non-empty
	// combination of its followers, etcd and the clients (with a netlab:
	// root and iproute2), until another node leads or, when etcd still
	// reaches it and it keeps its lease, for a second or two.
	FaultPartitionLeader = "partition-leader"
)

// autoCluster is the name the nodes join in etcd.
const autoCluster = "kvhistory"

// election is one leader key etcd held during the run.
type election struct {
	at    int64 // ns since the run's start, when the watch saw it
	id    string
	epoch int64 // the key's CreateRevision
}

// etcdProc is the etcd the nodes coordinate through.
type etcdProc struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
	cli  *clientv3.Client
}

// etcdBinary is $LOGKV_ETCD, etcd on PATH, or Debian's /usr/bin/etcd.
func etcdBinary() (string, error) {
	if b := os.Getenv("LOGKV_ETCD"); b != "" {
		return b, nil
	}
	if b, err := exec.LookPath("etcd"); err == nil {
		return b, nil
	}
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		return "/usr/bin/etcd", nil
	}
	return "", fmt.Errorf("%w: no etcd binary: install Debian's etcd-server (apt-get install etcd-server) or set LOGKV_ETCD", ErrCluster)
}

// startEtcd runs one etcd member: in the netlab's last namespace when
// there is a lab (so a partition can cut the leader off from it), else on
// loopback. Its heartbeat is 10 ms and election timeout 50 ms so that it
// grants leases of 1 s (its minimum TTL is 1.5 election timeouts, rounded
// up to a second), as replicate/coord/etcdtest runs it.
func startEtcd(ctx context.Context, work string, lab *netlab) (*etcdProc, error) {
	bin, err := etcdBinary()
	if err != nil {
		return nil, err
	}
	var client, peer string
	if lab != nil {
		ip := lab.addr(len(lab.ns) - 1)
		client, peer = ip+":2379", ip+":2380"
	} else {
		if client, err = addr("tcp"); err != nil {
			return nil, err
		}
		if peer, err = addr("tcp"); err != nil {
			return nil, err
		}
	}
	e := &etcdProc{url: "http://" + client, done: make(chan struct{})}
	args := []string{"--name", "e", "--data-dir", filepath.Join(work, "etcd"),
		"--listen-client-urls", e.url, "--advertise-client-urls", e.url,
		"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
		"--initial-cluster", "e=http://" + peer,
		"--heartbeat-interval", "10", "--election-timeout", "50", "--log-level", "error", "--logger", "zap"}
	e.cmd = exec.Command(bin, args...)
	if lab != nil {
		e.cmd = exec.Command("ip", append([]string{"netns", "exec", lab.ns[len(lab.ns)-1], bin}, args...)...)
	}
	if e.log, err = os.Create(filepath.Join(work, "etcd.log")); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCluster, err)
	}
	e.cmd.Stdout, e.cmd.Stderr = e.log, e.log
	if err := e.cmd.Start(); err != nil {
		e.log.Close()
		return nil, fmt.Errorf("%w: start etcd: %v", ErrCluster, err)
	}
	go func() { _ = e.cmd.Wait(); close(e.done) }()
	e.cli, err = clientv3.New(clientv3.Config{Endpoints: []string{e.url}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		e.close()
		return nil, fmt.Errorf("%w: etcd client: %v", ErrCluster, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := e.cli.Get(gctx, "health")
		cancel()
		if err == nil {
			return e, nil
		}
		select {
		case <-e.done:
			e.close()
			return nil, fmt.Errorf("%w: etcd exited at start (see %s)", ErrCluster, e.log.Name())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			e.close()
			return nil, fmt.Errorf("%w: etcd at %s did not answer in 20s: %v (see %s)", ErrCluster, e.url, err, e.log.Name())
		}
		_ = wait(ctx, 50*time.Millisecond) // polling for the condition, with a deadline
	}
}

func (e *etcdProc) close() {
	if e.cli != nil {
		e.cli.Close()
	}
	_ = e.cmd.Process.Kill()
	<-e.done
	e.log.Close()
}

// leaderKey is the etcd key of the shard's leader (docs/cluster.md).
func leaderKey() string { return coord.Prefix(autoCluster) + "shards/0/leader" }

// watchLeaders records every leader key etcd holds until ctx ends. The
// watch starts at the key's current revision, so no election is missed
// between reading and watching.
func (r *run) watchLeaders(ctx context.Context) {
	cli := r.c.etcd.cli
	for ctx.Err() == nil {
		g, err := cli.Get(ctx, leaderKey())
		if err != nil {
			_ = wait(ctx, 100*time.Millisecond)
			continue
		}
		for _, kv := range g.Kvs {
			r.elected(kv.Value, kv.CreateRevision)
		}
		wch := cli.Watch(clientv3.WithRequireLeader(ctx), leaderKey(), clientv3.WithRev(g.Header.Revision+1))
		for resp := range wch {
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypePut {
					r.elected(ev.Kv.Value, ev.Kv.CreateRevision)
				}
			}
		}
	}
}

func (r *run) elected(v []byte, epoch int64) {
	var l coord.Leader
	if json.Unmarshal(v, &l) != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.elections); n > 0 && r.elections[n-1].epoch == epoch {
		return // the same leadership, rewritten
	}
	r.elections = append(r.elections, election{at: r.now(), id: l.ID, epoch: epoch})
	r.cfg.Logf("etcd: %s leads (epoch %d)", l.ID, epoch)
	select {
	case r.electedCh <- struct{}{}:
	default:
	}
}

// currentLeader is the last election seen: the index of its node, or -1.
func (r *run) currentLeader() (idx int, epoch int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.elections) == 0 {
		return -1, 0
	}
	e := r.elections[len(r.elections)-1]
	for i, n := range r.c.nodes {
		if n.name == e.id {
			return i, e.epoch
		}
	}
	return -1, e.epoch
}

// awaitElection waits until etcd holds a leader key newer than epoch, or
// for at most d; it reports the new leader's index (-1 if none came).
func (r *run) awaitElection(epoch int64, d time.Duration) int {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		if i, e := r.currentLeader(); e > epoch && i >= 0 {
			return i
		}
		select {
		case <-r.electedCh:
		case <-deadline.C:
			return -1
		}
	}
}

// LeaderChanges counts the elections that named another node than the
// election before.
func (r *Result) LeaderChanges() int {
	n := 0
	for i := 1; i < len(r.Elections); i++ {
		if r.Elections[i].ID != r.Elections[i-1].ID {
			n++
		}
	}
	return n
}

// Failures lists what makes a run fail, for a run of cfg: in sync mode a
// history not proven linearizable or an acknowledged write lost; with
// automatic failover, a run that saw no leader change (it tested no
// failover) or fewer than cfg.Failovers.
func (r *Result) Failures(cfg Config) []string {
	var fs []string
	if cfg.Ack == "sync" {
		if !r.Verdict.Linearizable() {
			fs = append(fs, fmt.Sprintf("the history is not proven linearizable (porcupine: %s)", r.Verdict.Result))
		}
		if n := r.Lost(); n > 0 {
			fs = append(fs, fmt.Sprintf("%d acknowledged writes lost across failovers", n))
		}
		if r.StaleReads > 0 {
			fs = append(fs, fmt.Sprintf("%d reads returned a value a write acknowledged before them had overwritten", r.StaleReads))
		}
	}
	if cfg.Auto || (cfg.Shards > 0 && len(cfg.Nemesis) > 0) {
		switch n := r.LeaderChanges(); {
		case n == 0:
			fs = append(fs, "the run saw no leader change, so it tested no failover")
		case n < cfg.Failovers:
			fs = append(fs, fmt.Sprintf("the run saw %d leader changes of the %d asked for within %s", n, cfg.Failovers, cfg.Duration))
		}
	}
	return fs
}

// Election is one leadership etcd held during a run.
type Election struct {
	// At is when kvhistory saw it, since the start of the run.
	At time.Duration
	// ID is the leader's node id; Epoch the leader key's CreateRevision.
	ID    string
	Epoch int64
}

// autoNemesis hurts the current leader, one fault at a time, and waits
// for the cluster to elect another by itself; it never promotes. Each fault
// is healed before the next.
func (r *run) autoNemesis(ctx context.Context, faults []string) error {
	if len(faults) == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 0xfa017))
	for {
		if err := r.betweenFaults(ctx, rng); err != nil {
			return err
		}
		if r.cfg.Failovers > 0 && r.leaderChanges() >= r.cfg.Failovers {
			return nil
		}
		li, epoch := r.currentLeader()
		if li < 0 {
			// No leader right now (an election in progress): look again.
			continue
		}
		f := faults[rng.IntN(len(faults))]
		var err error
		switch f {
		case FaultKillLeader:
			err = r.killLeader(li, epoch, rng)
		case FaultPauseLeader:
			err = r.pauseLeader(li, epoch)
		case FaultPartitionLeader:
			err = r.partitionLeader(li, epoch, rng)
		case FaultKill:
			err = r.killFollower(ctx, rng)
		case FaultPause:
			err = r.pause(ctx, rng)
		}
		if err != nil {
			return err
		}
	}
}

func (r *run) leaderChanges() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for i := 1; i < len(r.elections); i++ {
		if r.elections[i].id != r.elections[i-1].id {
			n++
		}
	}
	return n
}

// electionWait bounds how long the nemesis holds a fault waiting for
// another node to lead: the lease's life, etcd's expiry check (500 ms),
// the followers' settle time and promotion, with room for a loaded
// machine.
func (r *run) electionWait() time.Duration { return 4*r.cfg.LeaseTTL + 6*time.Second }

// afterFailover measures, once another node leads, what the failover lost:
// it reads the new leader's keys as soon as it says it is master, before
// most clients find it, and LossAt counts the writes acknowledged before
// that read which the new leader lacks. The cut is the read, not the
// fault's start: a paused or partitioned old leader may still acknowledge
// writes after the fault began, and those count too. Writes the new leader
// takes before the read can only hide a loss, never invent one.
func (r *run) afterFailover(nl int) {
	n := r.c.nodes[nl]
	keys := make([]string, r.cfg.Keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The leader key comes first, the promotion (which applies the log's
	// tail) after: read once the node says it is master.
	for {
		if m, _, err := role(ctx, n.ctl); err == nil && m {
			break
		}
		if err := wait(ctx, 10*time.Millisecond); err != nil {
			r.cfg.Logf("nemesis: new leader %s did not say master within 5s (loss not measured for this failover)", n.name)
			return
		}
	}
	cut := r.now()
	vals, err := n.ctl.MGet(ctx, keys...).Result()
	if err != nil {
		r.cfg.Logf("nemesis: MGET on new leader %s: %v (loss not measured for this failover)", n.name, err)
		return
	}
	held := map[string]string{}
	for i, v := range vals {
		if s, ok := v.(string); ok {
			held[keys[i]] = s
		}
	}
	r.sample(cut, n.name, held)
	r.cfg.Logf("nemesis: %s leads", n.name)
}

// killLeader SIGKILLs the leader, waits for another to lead, and restarts
// the old one, which rejoins as a follower.
func (r *run) killLeader(li int, epoch int64, rng *rand.Rand) error {
	old := r.c.nodes[li]
	r.cfg.Logf("nemesis: kill leader %s", old.name)
	old.kill()
	r.count(FaultKillLeader)
	nl := r.awaitElection(epoch, r.electionWait())
	if nl >= 0 && nl != li {
		r.afterFailover(nl)
	} else {
		r.cfg.Logf("nemesis: no other leader within %s of killing %s", r.electionWait(), old.name)
	}
	_ = wait(context.Background(), time.Duration(rng.Int64N(int64(500*time.Millisecond))))
	return r.c.start(context.Background(), old, "")
}

// pauseLeader SIGSTOPs the leader until another leads, then SIGCONTs it:
// it wakes up believing it leads, and its fencing (its lease has lapsed by
// its own monotonic clock) must keep it from acknowledging anything.
func (r *run) pauseLeader(li int, epoch int64) error {
	old := r.c.nodes[li]
	r.cfg.Logf("nemesis: pause leader %s", old.name)
	old.signal(syscall.SIGSTOP)
	r.count(FaultPauseLeader)
	nl := r.awaitElection(epoch, r.electionWait())
	if nl >= 0 && nl != li {
		r.afterFailover(nl)
	} else {
		r.cfg.Logf("nemesis: no other leader within %s of pausing %s", r.electionWait(), old.name)
	}
	old.signal(syscall.SIGCONT)
	return nil
}

// partitionLeader cuts the leader off from a random non-empty combination
// of its followers, etcd and the clients. Cut from etcd, its lease lapses
// and another node must lead: the cut holds until one does. Otherwise it
// keeps its lease (and, cut from its followers in sync mode, cannot
// acknowledge writes) and the cut holds for a second or two.
func (r *run) partitionLeader(li int, epoch int64, rng *rand.Rand) error {
	lab := r.c.lab
	var targets []string
	var names []string
	fromEtcd := false
	for len(targets) == 0 {
		targets, names, fromEtcd = nil, nil, false
		if rng.IntN(2) == 0 {
			for i := range r.c.nodes {
				if i != li {
					targets = append(targets, lab.addr(i))
				}
			}
			names = append(names, "followers")
		}
		if rng.IntN(2) == 0 {
			targets = append(targets, lab.addr(len(lab.ns)-1))
			names, fromEtcd = append(names, "etcd"), true
		}
		if rng.IntN(2) == 0 {
			targets = append(targets, lab.host())
			names = append(names, "clients")
		}
	}
	old := r.c.nodes[li]
	r.cfg.Logf("nemesis: cut leader %s from %v", old.name, names)
	if err := lab.blackhole(li, targets, true); err != nil {
		return fmt.Errorf("%w: partition: %v", ErrCluster, err)
	}
	r.count(FaultPartitionLeader)
	r.mu.Lock()
	r.cuts[fmt.Sprint(names)]++
	r.mu.Unlock()
	if fromEtcd {
		nl := r.awaitElection(epoch, r.electionWait())
		if nl >= 0 && nl != li {
			r.afterFailover(nl)
		} else {
			r.cfg.Logf("nemesis: no other leader within %s of cutting %s from etcd", r.electionWait(), old.name)
		}
	} else {
		_ = wait(context.Background(), time.Second+time.Duration(rng.Int64N(int64(time.Second))))
	}
	if err := lab.blackhole(li, targets, false); err != nil {
		return fmt.Errorf("%w: heal partition: %v", ErrCluster, err)
	}
	return nil
}

// discoverAuto asks the nodes, in turn from a random one, where the leader
// is (SENTINEL get-master-addr-by-name), as a Sentinel client does, and
// returns its index, or -1 after a short wait if none answers with a
// node it knows.
func (r *run) discoverAuto(ctx context.Context, conns []*redis.Client, rng *rand.Rand) int {
	start := rng.IntN(len(conns))
	for k := range conns {
		i := (start + k) % len(conns)
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		v, err := conns[i].Do(dctx, "SENTINEL", "get-master-addr-by-name", autoCluster).StringSlice()
		cancel()
		if err != nil || len(v) != 2 {
			continue
		}
		for j, n := range r.c.nodes {
			if n.listen == v[0]+":"+v[1] {
				return j
			}
		}
	}
	_ = wait(ctx, 50*time.Millisecond)
	return -1
}
