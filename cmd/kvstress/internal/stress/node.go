package stress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/cmd/kvstress/internal/stress/powercut"
	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"
)

// nodeRunner runs kvnode for Config.Node and writes to it over Redis.
type nodeRunner struct {
	cfg      Config
	addr     string
	config   string // the YAML config file
	cmd      *exec.Cmd
	exited   chan struct{}
	client   *redis.Client
	db1      *redis.Client // database 1, for Config.Multi's expiry operations
	curCycle int           // the cycle multiCycle runs

	// With Config.PowerCut: the data directory is a powercut mount of
	// backing; kill cuts the power after the process is gone.
	data, backing, shadow string
	pc                    *powercut.FS
	lastCut               time.Time         // when the last cycle's kill began
	lastCutStats          powercut.CutStats // what it threw away
	sc                    *Scorecard        // totals of the cuts
}

// nodeConfig is kvnode's YAML config: small engine sizes, as openEngine's.
// The replication keys follow it.
const nodeConfig = `engine: %s
data_dir: %s
listen: %s
admin: "off"
appendfsync: %s
`

// replicatedConfig makes kvnode a replication leader without followers:
// with certificates it writes through the commit log. Port 0: nothing
// connects to it.
const replicatedConfig = `replication:
  listen: 127.0.0.1:0
tls:
  dir: %s
`

// Validate checks that cfg asks for something Run can check, and says what
// to change otherwise. It refuses Replicated, AppendFsync or Multi without
// Node, TxKeys outside 1 to 64,
// and the memory engine without Node (an engine alone keeps nothing across a
// kill; a kvnode keeps its commit log and checkpoints).
func (cfg *Config) Validate() error {
	if cfg.PowerCut {
		if !cfg.Node || cfg.Multi {
			return errors.New("stress: -powercut needs -node, and does not run with -multi (whose checks allow no loss)")
		}
		if err := powercut.Available(); err != nil {
			return fmt.Errorf("stress: -powercut: %w", err)
		}
	}
	if !cfg.Node {
		if cfg.Replicated || cfg.AppendFsync != "" || cfg.Multi {
			return errors.New("stress: -replicated, -appendfsync and -multi need -node")
		}
		opts, err := logkv.NewOptions(cfg.Engine)
		if err != nil {
			return fmt.Errorf("stress: %w", err)
		}
		if v, ok := opts.(logkv.Volatile); ok && v.Volatile() {
			return fmt.Errorf("stress: the %s engine keeps nothing across a kill; run it with -node", cfg.Engine)
		}
		return nil
	}
	if cfg.TxKeys < 0 || cfg.TxKeys > 64 {
		return fmt.Errorf("stress: %d keys per transaction: want 1 to 64", cfg.TxKeys)
	}
	switch cfg.AppendFsync {
	case "", "always", "everysec":
	default:
		return fmt.Errorf("stress: appendfsync %q: want always or everysec", cfg.AppendFsync)
	}
	// kvnode runs the engines it imports, node.EngineNames; this
	// binary's registry holds the same ones.
	if _, err := logkv.NewOptions(cfg.Engine); err != nil {
		return fmt.Errorf("stress: %w", err)
	}
	return nil
}

// nodeEngineOptions returns the engine_options section of kvnode's config:
// the engine's small options (smallOptions) as YAML, or nothing for an
// engine without options. The zero fields it writes mean the defaults to
// kvnode, as they do to Open.
func nodeEngineOptions(engine string) ([]byte, error) {
	opts, err := smallOptions(engine)
	if err != nil || opts == nil {
		return nil, err
	}
	// Through a map, to leave out the zero (default) fields: the file
	// then shows what kvstress changed.
	var fields map[string]any
	out, err := yaml.Marshal(opts)
	if err == nil {
		err = yaml.Unmarshal(out, &fields)
	}
	if err == nil {
		maps.DeleteFunc(fields, func(_ string, v any) bool {
			return v == nil || v == 0 || v == "" || v == false || v == "0s" || v == 0.0
		})
		out, err = yaml.Marshal(map[string]any{"engine_options": fields})
	}
	if err != nil {
		return nil, fmt.Errorf("stress: engine_options of %s: %w", engine, err)
	}
	return out, nil
}

func startNodeRunner(ctx context.Context, cfg Config) (*nodeRunner, error) {
	if cfg.KVNode == "" {
		return nil, errors.New("stress: Node needs the kvnode binary (KVNode)")
	}
	opts, err := nodeEngineOptions(cfg.Engine)
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	data := filepath.Join(cfg.Dir, "data")
	config := filepath.Join(cfg.Dir, "kvstress-node.yaml")
	yaml := fmt.Appendf(nil, nodeConfig, cfg.Engine, data, addr, cfg.AppendFsync)
	yaml = append(yaml, opts...)
	if cfg.Replicated {
		tls, err := makeCerts(ctx, cfg.KVNode, cfg.Dir)
		if err != nil {
			return nil, err
		}
		yaml = fmt.Appendf(yaml, replicatedConfig, tls)
	}
	if err := os.WriteFile(config, yaml, 0o644); err != nil {
		return nil, err
	}
	n := &nodeRunner{cfg: cfg, addr: addr, config: config, data: data}
	if cfg.PowerCut {
		n.backing, n.shadow = data+".backing", filepath.Join(cfg.Dir, "powercut-shadow")
		for _, d := range []string{data, n.backing} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return nil, err
			}
		}
	}
	n.client = redis.NewClient(&redis.Options{Addr: addr, PoolSize: cfg.Writers + 2, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	if cfg.Multi {
		n.db1 = redis.NewClient(&redis.Options{Addr: addr, DB: 1, PoolSize: 4, MaxRetries: -1,
			DialTimeout: time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	}
	if _, err := n.start(ctx); err != nil {
		n.stop() // unmounts too
		return nil, err
	}
	return n, nil
}

// freeAddr returns a loopback address with a port free at the moment, for
// kvnode's Redis listener (which it must keep across restarts).
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// makeCerts makes the replication certificates with `kvnode certs`, once
// (a directory from an earlier run is reused): the CA in dir/tls/ca and the
// node's own in dir/tls/node, the directory it returns.
func makeCerts(ctx context.Context, kvnode, dir string) (string, error) {
	tls := filepath.Join(dir, "tls")
	node := filepath.Join(tls, "node")
	if _, err := os.Stat(filepath.Join(node, "node.key")); err == nil {
		return node, nil
	}
	out, err := exec.CommandContext(ctx, kvnode, "certs", "-dir", tls, "-node", "node").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("kvnode certs -dir %s -node node: %w: %s", tls, err, out)
	}
	return node, nil
}

// start starts kvnode and returns once it answers PING, with the time that
// took.
func (n *nodeRunner) start(ctx context.Context) (time.Duration, error) {
	begin := time.Now()
	if n.cfg.PowerCut && n.pc == nil {
		pc, err := powercut.Mount(n.backing, n.data, n.shadow)
		if err != nil {
			return 0, err
		}
		n.pc = pc
	}
	args := []string{"-config", n.config, "-log-level", "warn"}
	if !n.cfg.Replicated {
		args = append(args, "-repl", "off")
	}
	cmd := exec.CommandContext(ctx, n.cfg.KVNode, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start kvnode: %w", err)
	}
	n.cmd = cmd
	n.exited = make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), "connect with") {
				once = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, out)
		close(n.exited)
	}()
	select {
	case <-ready:
	case <-n.exited:
		_ = cmd.Wait()
		return 0, fmt.Errorf("kvnode exited before serving: %v", cmd.ProcessState)
	}
	// Serve starts just after the banner: PING until it answers, bounded.
	for attempt := 0; ; attempt++ {
		err := n.client.Ping(ctx).Err()
		if err == nil {
			break
		}
		if attempt == 1000 || ctx.Err() != nil {
			return 0, fmt.Errorf("kvnode does not answer PING: %w", err)
		}
		runtimeYield()
	}
	return time.Since(begin), nil
}

// runtimeYield waits a moment between PINGs of a node that has printed its
// banner but not yet accepted (a poll of an external process, not test
// synchronisation).
func runtimeYield() { time.Sleep(time.Millisecond) }

// kill SIGKILLs kvnode and waits for it; with Config.PowerCut it then cuts
// the power of its data directory.
func (n *nodeRunner) kill() error {
	if n.cmd != nil {
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.exited
		_ = n.cmd.Wait()
		n.cmd = nil
	}
	if n.pc == nil {
		return nil
	}
	stats, err := n.pc.Cut()
	n.pc = nil
	if err != nil {
		return err
	}
	n.lastCutStats = stats
	if n.sc != nil {
		n.sc.CutFiles += stats.Files
		n.sc.CutBytes += stats.Bytes
	}
	return nil
}

func (n *nodeRunner) stop() {
	if n.cmd != nil {
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.exited
		_ = n.cmd.Wait()
		n.cmd = nil
	}
	if n.pc != nil {
		_ = n.pc.Unmount()
		n.pc = nil
	}
	n.closeClients()
}

func (n *nodeRunner) closeClients() {
	_ = n.client.Close()
	if n.db1 != nil {
		_ = n.db1.Close()
	}
}

// cycle writes to the running kvnode from cfg.Writers goroutines, kills it
// after kill, restarts it, and returns GET as the reader.
func (n *nodeRunner) cycle(ctx context.Context, c int, kill time.Duration) (*acks, time.Duration, func(int) ([]byte, bool, error), func() error, error) {
	a := newAcks()
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	w, keys := n.cfg.Writers, n.cfg.Keys
	for wi := range w {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(n.cfg.Seed+uint64(c), uint64(wi)))
			counter := map[int]int{}
			owned := (keys - wi + w - 1) / w
			// Odd writers send pipelines of up to 16 SETs of distinct
			// keys, which kvnode applies as one batch; even ones send one
			// SET at a time.
			pipelined := wi%2 == 1
			var batch []int
			for wctx.Err() == nil {
				batch = batch[:0]
				size := 1
				if pipelined {
					size = 1 + rng.IntN(16)
				}
				for range size {
					i := wi + w*rng.IntN(owned)
					if !slices.Contains(batch, i) {
						batch = append(batch, i)
					}
				}
				_, err := n.client.Pipelined(wctx, func(p redis.Pipeliner) error {
					for _, i := range batch {
						k := keyName(i)
						counter[i]++
						p.Set(wctx, k, value(k, version{c, counter[i]}), 0)
					}
					return nil
				})
				if err != nil {
					// Unacknowledged: these writes may or may not be
					// there, so their keys must not be written again this
					// cycle (only one write per key may be in doubt).
					return
				}
				for _, i := range batch {
					a.add(i, counter[i])
				}
			}
		})
	}
	select {
	case <-time.After(kill):
	case <-ctx.Done():
	}
	// The writers stop before the cut: the power goes once the process
	// is dead, and no write may land in between.
	n.lastCut = time.Now() // the power goes with the process
	if n.cmd != nil {
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
	}
	cancel()
	wg.Wait()
	if err := n.kill(); err != nil {
		return nil, 0, nil, nil, fmt.Errorf("power cut: %w", err)
	}
	recovery, err := n.start(ctx)
	if err != nil {
		return nil, 0, nil, nil, err
	}
	read := func(i int) ([]byte, bool, error) {
		v, err := n.client.Get(ctx, keyName(i)).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil, false, nil
		}
		return v, err == nil, err
	}
	return a, recovery, read, func() error { return nil }, nil
}
