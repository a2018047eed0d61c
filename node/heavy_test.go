package node

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// Issue 16: a heavy command (command.heavy: KEYS, DBSIZE, a DEL or MGET of
// many keys) runs under the node-wide cap of Node.heavy however it
// arrives. Inside MULTI/EXEC it used to escape it: EXEC took no token, and
// ran on the event loop where the backend does not wait (appendfsync
// everysec), or off it, uncapped, where it does. Either way a flood of
// transactions of KEYS took the CPU from the loops. 32 clients run MULTI,
// KEYS *nomatch* (a walk of 20,000 keys), EXEC, eight at a time, reading
// every reply, while a victim GETs a small key; its GET p99 must stay under
// heavyVictimP99.
func TestHeavyExecUnderCap(t *testing.T) {
	an := startAttackedNode(t, rssConfig)
	lat := an.attack(t, rssAttack{WithKeys: true, Only: rssExecKeysFlood})
	p99 := lat[len(lat)*99/100]
	// The flood ran: KEYS was called, at least once a client.
	info, err := an.victim.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	m := regexp.MustCompile(`cmdstat_keys:calls=(\d+)`).FindStringSubmatch(info)
	require.NotNil(t, m, info)
	calls, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	require.GreaterOrEqual(t, calls, 32, "KEYS calls during the flood")
	t.Logf("MULTI/KEYS/EXEC flood: %d KEYS; victim GETs %d: p50 %v p99 %v max %v", calls, len(lat), lat[len(lat)/2], p99, lat[len(lat)-1])
	require.Less(t, p99, heavyVictimP99, "a well-behaved client's GET p99 while 32 clients run KEYS in MULTI/EXEC")
}

// heavyVictimP99 bounds the victim's GET p99 under the flood. Measured on a
// 2-core machine at load 12-28 (docs/memory.md): without the cap, p99 50
// and 118 ms, and with an instrumented (-race) attacker, whose flood is
// thinner, 14-24 ms; with it, 3.1-4.9 ms. TestHeavyCapCoversExec is the
// exact check; this one is what a client sees.
const heavyVictimP99 = 50 * time.Millisecond

// A heavy command holds a token of Node.heavy however it arrives: an EXEC
// whose transaction queued KEYS or a DEL of many keys runs holding one
// (before the fix it held none, on every backend), a transaction of light
// commands and a command MULTI only queues take none. And the cap does not
// deadlock with EXEC's key locks: clients that run heavy transactions and
// big DELs over the same keys all finish.
func TestHeavyCapCoversExec(t *testing.T) {
	for _, fsync := range []string{"always", "everysec"} {
		t.Run(fsync, func(t *testing.T) {
			n := newNode(t, func(c *Config) { c.AppendFsync = fsync })
			var mu sync.Mutex
			held := map[string][]int{} // tokens held when each command started
			n.testHookCommand = func(args [][]byte) {
				mu.Lock()
				defer mu.Unlock()
				name := strings.ToUpper(string(args[0]))
				held[name] = append(held[name], len(n.heavy))
			}
			serve(t, n)
			ctx := context.Background()
			c := dial(t, n, func(o *redis.Options) { o.PoolSize = 1 })
			many := make([]string, manyArgs+1)
			for i := range many {
				many[i] = fmt.Sprintf("k%05d", i)
			}
			require.NoError(t, c.Set(ctx, "k00000", "v", 0).Err())
			// tx runs a transaction and returns the tokens held as each of
			// its commands started.
			tx := func(queue func(p redis.Pipeliner)) map[string][]int {
				mu.Lock()
				clear(held)
				mu.Unlock()
				_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error { queue(p); return nil })
				require.NoError(t, err)
				mu.Lock()
				defer mu.Unlock()
				return maps.Clone(held)
			}
			h := tx(func(p redis.Pipeliner) { p.Keys(ctx, "*") })
			require.Equal(t, []int{1}, h["EXEC"], "EXEC of a KEYS holds a token")
			require.Equal(t, []int{0}, h["KEYS"], "a KEYS MULTI only queues holds no token")
			h = tx(func(p redis.Pipeliner) { p.Exists(ctx, "k00000"); p.Del(ctx, many...) })
			require.Equal(t, []int{1}, h["EXEC"], "EXEC of a DEL of many keys holds a token")
			h = tx(func(p redis.Pipeliner) { p.Exists(ctx, "k00000"); p.Set(ctx, "k1", "v", 0) })
			require.Equal(t, []int{0}, h["EXEC"], "EXEC of light commands holds none")

			// No deadlock between the cap and the key locks.
			keys := many[:manyArgs+1]
			done := make(chan error, 4)
			for i := range 4 {
				// Slow under load is not a deadlock: the timeout is the
				// test's, below.
				cl := dial(t, n, func(o *redis.Options) { o.PoolSize, o.ReadTimeout = 1, -1 })
				go func() {
					var err error
					for range 3 {
						if i%2 == 0 {
							_, err = cl.TxPipelined(ctx, func(p redis.Pipeliner) error {
								p.Set(ctx, keys[i], "v", 0)
								p.Keys(ctx, "k0000*")
								p.Del(ctx, keys...)
								return nil
							})
						} else {
							err = cl.Del(ctx, keys...).Err()
						}
						if err != nil {
							break
						}
					}
					done <- err
				}()
			}
			deadline := time.After(2 * time.Minute)
			for range 4 {
				select {
				case err := <-done:
					require.NoError(t, err)
				case <-deadline:
					t.Fatal("clients running heavy transactions and big DELs over the same keys did not finish: deadlock")
				}
			}
		})
	}
}
