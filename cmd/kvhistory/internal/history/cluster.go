package history

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrCluster is returned when the cluster under test misbehaves outside the
// faults the nemesis injects (a node does not start, no leader appears).
var ErrCluster = errors.New("history: cluster")

// node is one kvnode child process.
type node struct {
	name   string
	dir    string // data dir
	listen string // Redis protocol addr
	admin  string
	repl   string // replication (QUIC) addr
	log    *os.File
	netns  string // network namespace, or "" for the caller's
	shard  string // the shard it joins (-shard), "" outside a sharded run

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd exits
	stopped bool          // SIGSTOPped
	ctl     *redis.Client // control connection for the nemesis
}

// cluster is three kvnodes started from one binary.
type cluster struct {
	bin, tls string // tls holds the CA (tls/ca) and each node's certificate (tls/NAME)
	engine   string
	ack      string
	nodes    []*node
	leader   int // index of the node the nemesis made leader (manual failover)
	lab      *netlab
	// etcd and config, in automatic-failover mode: the nodes join
	// autoCluster there, with the settings in the config file.
	etcd   *etcdProc
	config string
}

func freePort(network string) (int, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func addr(network string) (string, error) {
	p, err := freePort(network)
	if err != nil {
		return "", fmt.Errorf("%w: pick a port: %v", ErrCluster, err)
	}
	return "127.0.0.1:" + strconv.Itoa(p), nil
}

// startCluster writes certificates, one per node, and starts node 0 as
// leader, 1 and 2 as its followers.
// With a netlab, node i runs in namespace i on the lab's address i.
// With etcd, the nodes join a cluster there instead (automatic failover),
// with leases of ttl.
func startCluster(ctx context.Context, bin, work, engine, ack string, lab *netlab, etcd *etcdProc, ttl time.Duration) (*cluster, error) {
	c := &cluster{bin: bin, tls: filepath.Join(work, "tls"), engine: engine, ack: ack, lab: lab, etcd: etcd}
	if etcd != nil {
		c.config = filepath.Join(work, "cluster.yaml")
		conf := fmt.Sprintf("# kvhistory: automatic failover through etcd\ncluster:\n  lease_ttl: %s\n", ttl)
		if err := os.WriteFile(c.config, []byte(conf), 0o600); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCluster, err)
		}
	}
	certs := []string{"certs", "-dir", c.tls, "-node", "n1,n2,n3"}
	if lab != nil {
		certs = append(certs, "-hosts", lab.hosts())
	}
	if out, err := exec.CommandContext(ctx, bin, certs...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%w: kvnode certs: %v: %s", ErrCluster, err, out)
	}
	for i := range 3 {
		n := &node{name: fmt.Sprintf("n%d", i+1), dir: filepath.Join(work, fmt.Sprintf("n%d", i+1))}
		var err error
		if lab != nil {
			ip := lab.addr(i)
			n.netns, n.listen, n.admin, n.repl = lab.ns[i], ip+":6380", ip+":9380", ip+":7380"
		} else {
			if n.listen, err = addr("tcp"); err != nil {
				return nil, err
			}
			if n.admin, err = addr("tcp"); err != nil {
				return nil, err
			}
			if n.repl, err = addr("udp"); err != nil {
				return nil, err
			}
		}
		if n.log, err = os.Create(filepath.Join(work, n.name+".log")); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCluster, err)
		}
		n.ctl = redis.NewClient(&redis.Options{Addr: n.listen, Password: clusterPassword, MaxRetries: -1, PoolSize: 2,
			DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: time.Second})
		c.nodes = append(c.nodes, n)
	}
	for i, n := range c.nodes {
		of := ""
		if i != 0 && etcd == nil {
			of = c.nodes[0].repl
		}
		if err := c.start(ctx, n, of); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

// start runs n, following leaderRepl when it is not empty, and waits until it
// answers PING.
func (c *cluster) start(ctx context.Context, n *node, leaderRepl string) error {
	args := []string{"-data", n.dir, "-engine", c.engine, "-tls-dir", filepath.Join(c.tls, n.name), "-listen", n.listen,
		"-admin", n.admin, "-repl", n.repl, "-ack", c.ack, "-log-level", "warn",
		"-requirepass", clusterPassword} // REPLICAOF needs an admin
	if c.ack == "sync" {
		args = append(args, "-quorum", "1")
	}
	if leaderRepl != "" {
		args = append(args, "-replicaof", leaderRepl)
	}
	if c.etcd != nil {
		args = append(args, "-config", c.config, "-etcd", c.etcd.url, "-cluster", autoCluster)
	}
	if n.shard != "" {
		args = append(args, "-shard", n.shard)
	}
	cmd := exec.Command(c.bin, args...)
	if n.netns != "" {
		// ip netns exec execs kvnode in place, so cmd's pid is kvnode's.
		cmd = exec.Command("ip", append([]string{"netns", "exec", n.netns, c.bin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = n.log, n.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: start %s: %v", ErrCluster, n.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	n.mu.Lock()
	n.cmd, n.done, n.stopped = cmd, done, false
	n.mu.Unlock()
	return c.await(ctx, n, done)
}

// await polls n with PING until it answers, it exits, or 20 s pass.
func (c *cluster) await(ctx context.Context, n *node, done chan struct{}) error {
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if n.ctl.Ping(ctx).Err() == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%w: %s exited at start (see %s)", ErrCluster, n.name, n.log.Name())
		case <-deadline.C:
			return fmt.Errorf("%w: %s did not answer PING in 20s", ErrCluster, n.name)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// kill SIGKILLs n and waits for it to exit.
func (n *node) kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
	n.ctl.Close()
	n.ctl = redis.NewClient(&redis.Options{Addr: n.listen, Password: clusterPassword, MaxRetries: -1, PoolSize: 2,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: time.Second})
}

// signal sends SIGSTOP or SIGCONT to n.
func (n *node) signal(sig syscall.Signal) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		_ = n.cmd.Process.Signal(sig)
		n.stopped = sig == syscall.SIGSTOP
	}
}

func (c *cluster) close() {
	if c.lab != nil {
		for i := range c.nodes {
			_ = c.lab.isolate(i, false)
		}
	}
	for _, n := range c.nodes {
		n.signal(syscall.SIGCONT)
		n.kill()
		n.ctl.Close()
		n.log.Close()
	}
}

// role asks n for its ROLE: master (with its last sequence) or slave (with
// its applied sequence).
func role(ctx context.Context, cl *redis.Client) (master bool, seq int64, err error) {
	v, err := cl.Do(ctx, "ROLE").Slice()
	if err != nil {
		return false, 0, err
	}
	if len(v) < 2 {
		return false, 0, fmt.Errorf("%w: short ROLE reply %v", ErrCluster, v)
	}
	switch v[0] {
	case "master":
		s, _ := v[1].(int64)
		return true, s, nil
	case "slave":
		if len(v) < 5 {
			return false, 0, fmt.Errorf("%w: short ROLE reply %v", ErrCluster, v)
		}
		s, _ := v[4].(int64)
		return false, s, nil
	}
	return false, 0, fmt.Errorf("%w: ROLE reply %v", ErrCluster, v)
}

// clusterPassword is the nodes' password: REPLICAOF, which the nemesis
// sends, is an administrative command.
const clusterPassword = "history-admin"

// replicaOf sends REPLICAOF to n: "" promotes it (NO ONE).
func replicaOf(ctx context.Context, n *node, leaderRepl string) error {
	args := []any{"REPLICAOF", "NO", "ONE"}
	if leaderRepl != "" {
		h, p, _ := net.SplitHostPort(leaderRepl)
		args = []any{"REPLICAOF", h, p}
	}
	if err := n.ctl.Do(ctx, args...).Err(); err != nil {
		return fmt.Errorf("%w: %s %v: %v", ErrCluster, n.name, args, err)
	}
	return nil
}
