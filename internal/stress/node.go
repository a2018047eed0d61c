package stress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// nodeRunner runs kvnode for Config.Node and writes to it over Redis.
type nodeRunner struct {
	cfg    Config
	addr   string
	config string // the YAML config file
	cmd    *exec.Cmd
	exited chan struct{}
	client *redis.Client
}

// nodeConfig is kvnode's YAML config: small engine sizes, as openEngine's.
const nodeConfig = `engine: %s
data_dir: %s
listen: %s
admin: "off"
engine_options:
%s`

func startNodeRunner(ctx context.Context, cfg Config) (*nodeRunner, error) {
	if cfg.KVNode == "" {
		return nil, errors.New("stress: Node needs the kvnode binary (KVNode)")
	}
	var opts string
	switch cfg.Engine {
	case "lsm":
		opts = "  memtable_size: 65536\n  l0_compaction_threshold: 2\n  lbase_max_bytes: 131072\n  target_file_size: 32768\n"
	case "bitcask":
		opts = "  max_file_size: 32768\n  merge_threshold: 0.3\n"
	default:
		return nil, fmt.Errorf("stress: engine %q: want lsm or bitcask", cfg.Engine)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	_ = l.Close()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	data := filepath.Join(cfg.Dir, "data")
	config := filepath.Join(cfg.Dir, "kvstress-node.yaml")
	if err := os.WriteFile(config, fmt.Appendf(nil, nodeConfig, cfg.Engine, data, addr, opts), 0o644); err != nil {
		return nil, err
	}
	n := &nodeRunner{cfg: cfg, addr: addr, config: config}
	n.client = redis.NewClient(&redis.Options{Addr: addr, PoolSize: cfg.Writers + 2, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	if _, err := n.start(ctx); err != nil {
		_ = n.client.Close()
		return nil, err
	}
	return n, nil
}

// start starts kvnode and returns once it answers PING, with the time that
// took.
func (n *nodeRunner) start(ctx context.Context) (time.Duration, error) {
	begin := time.Now()
	cmd := exec.CommandContext(ctx, n.cfg.KVNode, "-config", n.config, "-repl", "off", "-log-level", "warn")
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

// kill SIGKILLs kvnode and waits for it.
func (n *nodeRunner) kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
	_ = n.cmd.Wait()
	n.cmd = nil
}

func (n *nodeRunner) stop() {
	n.kill()
	_ = n.client.Close()
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
			for wctx.Err() == nil {
				i := wi + w*rng.IntN(owned)
				k := keyName(i)
				counter[i]++
				v := version{c, counter[i]}
				if err := n.client.Set(wctx, k, value(k, v), 0).Err(); err != nil {
					// Unacknowledged: this write may or may not be there,
					// so this key must not be written again this cycle
					// (only one write per key may be in doubt).
					return
				}
				a.add(i, v.n)
			}
		})
	}
	select {
	case <-time.After(kill):
	case <-ctx.Done():
	}
	n.kill()
	cancel()
	wg.Wait()
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
