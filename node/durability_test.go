package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// nodeProcessEnv carries a JSON Config to the test binary run as a child
// kvnode (TestNodeProcess), so a test can kill it with SIGKILL.
const nodeProcessEnv = "LOGKV_NODE_PROCESS_CONFIG"

// TestNodeProcess is not a test: run as a child with nodeProcessEnv set, it
// serves a node, prints its address and serves until killed.
func TestNodeProcess(t *testing.T) {
	js := os.Getenv(nodeProcessEnv)
	if js == "" {
		t.Skip("a child process of TestAcknowledgedWritesSurviveKill")
	}
	cfg := DefaultConfig()
	require.NoError(t, json.Unmarshal([]byte(js), &cfg))
	n, err := New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	fmt.Printf("addr %s\n", n.Addr())
	require.NoError(t, n.Serve())
}

// startNodeProcess runs cfg in a child process and returns it with its
// Redis address.
func startNodeProcess(t *testing.T, cfg Config) (*exec.Cmd, string) {
	t.Helper()
	js, err := json.Marshal(cfg)
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^TestNodeProcess$", "-test.v")
	cmd.Env = append(os.Environ(), nodeProcessEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "addr "); ok {
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd, addr
		}
	}
	t.Fatalf("the node process exited before serving: %v", sc.Err())
	return nil, ""
}

// Finding 0 of issue 16: a node without certificates forgot every
// acknowledged write of its memory engine at kill -9. Every engine, in both
// appendfsync modes, must now keep every write a client saw acknowledged:
// the commit log (with checkpoints, for memory) does not depend on
// replication. Writers pipeline SETs while the node is killed with SIGKILL;
// a node restarted on the same directory must hold every acknowledged value.
func TestAcknowledgedWritesSurviveKill(t *testing.T) {
	for _, tc := range []struct{ engine, fsync string }{
		{"memory", "always"}, {"memory", "everysec"}, {"bitcask", "always"}, {"lsm", "everysec"},
	} {
		t.Run(tc.engine+"/"+tc.fsync, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Engine, cfg.AppendFsync, cfg.DataDir = tc.engine, tc.fsync, t.TempDir()
			cfg.Listen, cfg.Admin, cfg.Replication.Listen = "127.0.0.1:0", "off", "127.0.0.1:0"
			cmd, addr := startNodeProcess(t, cfg)

			ctx := context.Background()
			var mu sync.Mutex
			acked := map[string]string{}
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for w := range 4 {
				wg.Go(func() {
					c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
					defer c.Close()
					for round := 0; ; round++ {
						select {
						case <-stop:
							return
						default:
						}
						cmds, _ := c.Pipelined(ctx, func(p redis.Pipeliner) error {
							for i := range 20 {
								p.Set(ctx, fmt.Sprintf("w%d-k%d", w, (round*20+i)%300), fmt.Sprint(round), 0)
							}
							return nil
						})
						for _, cm := range cmds {
							if cm.Err() != nil {
								return // killed
							}
							mu.Lock()
							acked[cm.Args()[1].(string)] = cm.Args()[2].(string)
							mu.Unlock()
						}
					}
				})
			}
			// Kill once a good number of writes were acknowledged.
			deadline := time.Now().Add(20 * time.Second)
			for {
				mu.Lock()
				n := len(acked)
				mu.Unlock()
				if n >= 800 || time.Now().After(deadline) {
					break
				}
				time.Sleep(5 * time.Millisecond) // polling for the condition, not synchronising
			}
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			close(stop)
			wg.Wait()
			cmd.Wait()
			require.GreaterOrEqual(t, len(acked), 800, "the writers stalled")

			cfg.Replication.Listen = "off"
			n := startNode(t, func(c *Config) { *c = cfg; c.Listen = "127.0.0.1:0" })
			c := dial(t, n, nil)
			lost := 0
			for k, v := range acked {
				got, err := c.Get(ctx, k).Result()
				// A later write of the same key may have been applied but
				// not acknowledged: the value is that round or later.
				if err != nil || atoiT(t, got) < atoiT(t, v) {
					lost++
				}
			}
			require.Zero(t, lost, "acknowledged writes lost of %d", len(acked))
			info := c.Info(ctx, "persistence").Val()
			require.Contains(t, info, "durability:full")
			require.Contains(t, info, "aof_enabled:1")
		})
	}
}

func atoiT(t *testing.T, s string) int {
	var v int
	_, err := fmt.Sscan(s, &v)
	require.NoError(t, err, "value %q", s)
	return v
}

// A node that cannot keep acknowledged writes is refused unless its config
// says so, and INFO says what it promises.
func TestDurabilityConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Engine, cfg.DataDir = "memory", ""
	require.ErrorContains(t, cfg.Validate(), "durability: none")
	cfg.Durability = "maybe"
	require.ErrorContains(t, cfg.Validate(), `durability "maybe"`)
	cfg.Durability = "none"
	require.NoError(t, cfg.Validate())
	cfg.TLS.Dir = "tls"
	require.ErrorContains(t, cfg.Validate(), "durability: full to replicate")

	n := startNode(t, func(c *Config) { c.Durability, c.DataDir = "none", "" })
	info := dial(t, n, nil).Info(context.Background(), "persistence").Val()
	require.Contains(t, info, "durability:none")
	require.Contains(t, info, "aof_enabled:0")
}
