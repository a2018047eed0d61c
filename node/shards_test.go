package node

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// redisClusterNode starts a redis-server with cluster support on a unix
// socket (a one-node cluster with no slots: enough for CLUSTER KEYSLOT) and
// returns a connection to it, or skips when redis-server is missing (fails
// under CI, as redisServer does).
func redisClusterNode(t *testing.T) net.Conn {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server is not installed (apt-get install redis-server): the slot check against Redis cannot run"
		if os.Getenv("CI") == "true" || os.Getenv("LOGKV_REQUIRE_REDIS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no", "--dir", dir,
		"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
		// The cluster bus listens on port+10000 unless told: 10000 with
		// port 0, which another test's server may hold.
		"--bind", "127.0.0.1", "--cluster-port", strconv.Itoa(freeLoopbackPort(t)))
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := net.Dial("unix", sock)
		if err == nil {
			t.Cleanup(func() { nc.Close() })
			return nc
		}
		require.True(t, time.Now().Before(deadline), "redis-server did not start: %v", err)
		time.Sleep(10 * time.Millisecond)
	}
}

// freeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment
// ago.
func freeLoopbackPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// slotTestKeys are keys that exercise every rule of the hash tag: tags
// first, last, nested, empty, unclosed, repeated, and binary keys.
func slotTestKeys() [][]byte {
	keys := [][]byte{
		[]byte(""), []byte("a"), []byte("foo"), []byte("123456789"),
		[]byte("{user1000}.following"), []byte("{user1000}.followers"),
		[]byte("foo{}{bar}"), []byte("foo{{bar}}zap"), []byte("foo{bar}{zap}"),
		[]byte("{}"), []byte("{"), []byte("}"), []byte("}{"), []byte("{}x"), []byte("x{}"),
		[]byte("{a"), []byte("a{b"), []byte("a}b{c"), []byte("{{}}"), []byte("{{"), []byte("}}"),
		[]byte("a{b}c{d}e"), []byte("{\x00}"), []byte("\xff{\xfe}\xfd"),
	}
	r := rand.New(rand.NewPCG(20, 1))
	alphabet := []byte("ab{}{}\x00\xff")
	for range 3000 {
		k := make([]byte, r.IntN(24))
		for i := range k {
			if r.IntN(2) == 0 {
				k[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				k[i] = byte(r.IntN(256))
			}
		}
		keys = append(keys, k)
	}
	return keys
}

// TestKeySlotRedis compares keySlot with redis-server's CLUSTER KEYSLOT.
func TestKeySlotRedis(t *testing.T) {
	nc := redisClusterNode(t)
	keys := slotTestKeys()
	// One pipeline: write every request, then read every reply.
	var req []byte
	for _, k := range keys {
		req = fmt.Appendf(req, "*3\r\n$7\r\nCLUSTER\r\n$7\r\nKEYSLOT\r\n$%d\r\n%s\r\n", len(k), k)
	}
	require.NoError(t, nc.SetDeadline(time.Now().Add(30*time.Second)))
	go func() {
		_, err := nc.Write(req)
		if err != nil {
			t.Log("write:", err)
		}
	}() // the replies may fill the socket before the requests are all written
	r := bufio.NewReader(nc)
	for _, k := range keys {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(line, ":"), "CLUSTER KEYSLOT %q: reply %q", k, line)
		want, err := strconv.Atoi(strings.TrimSpace(line[1:]))
		require.NoError(t, err)
		require.Equal(t, want, int(keySlot(k)), "key %q", k)
	}
}

// TestKeySlotKnown checks values that do not need a redis-server: the
// CRC-16/XMODEM check value, and the slots Redis' documentation gives.
func TestKeySlotKnown(t *testing.T) {
	require.Equal(t, uint16(0x31c3), crc16([]byte("123456789")))
	require.Equal(t, uint16(12182), keySlot([]byte("foo")))
	require.Equal(t, keySlot([]byte("user1000")), keySlot([]byte("{user1000}.following")))
	require.Equal(t, keySlot([]byte("bar")), keySlot([]byte("foo{bar}{zap}")))
	require.Equal(t, keySlot([]byte("foo{}{bar}")), crc16([]byte("foo{}{bar}"))&(numSlots-1), "an empty tag hashes the whole key")
	require.Equal(t, keySlot([]byte("{bar")), crc16([]byte("{bar"))&(numSlots-1), "an unclosed tag hashes the whole key")
	require.Equal(t, keySlot([]byte("bar")), keySlot([]byte("{bar}}")))
	require.Equal(t, keySlot([]byte("{bar")), keySlot([]byte("{{bar}")), "the tag starts after the first '{'")
}

func TestKeySlotNoAlloc(t *testing.T) {
	k := []byte("{user1000}.following")
	require.Zero(t, testing.AllocsPerRun(100, func() { keySlot(k) }))
}

func BenchmarkKeySlot(b *testing.B) {
	for _, k := range []string{"key:000000012345", "{user1000}.following", strings.Repeat("k", 100)} {
		key := []byte(k)
		b.Run(strconv.Itoa(len(k)), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(key)))
			for b.Loop() {
				keySlot(key)
			}
		})
	}
}

func TestEvenSlotMap(t *testing.T) {
	m, err := evenSlotMap([]string{"a", "b", "c"})
	require.NoError(t, err)
	// redis-cli --cluster create's ranges for three masters.
	require.Equal(t, []slotRange{{0, 5460, 0}, {5461, 10922, 1}, {10923, 16383, 2}}, m.Ranges)
	for _, n := range []int{1, 2, 5, 7, 100, 1024} {
		shards := make([]string, n)
		for i := range shards {
			shards[i] = "s" + strconv.Itoa(i)
		}
		m, err := evenSlotMap(shards)
		require.NoError(t, err, "%d shards", n)
		tab := m.table()
		count := map[string]int{}
		for s := range numSlots {
			count[tab.shardOf(uint16(s))]++
		}
		lo, hi := numSlots, 0
		for _, c := range count {
			lo, hi = min(lo, c), max(hi, c)
		}
		require.Len(t, count, n)
		require.LessOrEqual(t, hi-lo, 1, "%d shards: sizes %d to %d", n, lo, hi)
	}
	_, err = evenSlotMap(nil)
	require.Error(t, err)
	_, err = evenSlotMap([]string{"a", "a"})
	require.ErrorContains(t, err, "twice")
	_, err = evenSlotMap([]string{"a/b"})
	require.ErrorContains(t, err, "'/'")
}

func TestSlotMapRoundTrip(t *testing.T) {
	m, err := evenSlotMap([]string{"a", "b", "c"})
	require.NoError(t, err)
	m.Moves = []slotMove{{First: 5461, Last: 5470, From: 1, To: 0, State: moveCopying}}
	b, err := m.encode()
	require.NoError(t, err)
	require.Equal(t, `{"v":1,"shards":["a","b","c"],"ranges":[[0,5460,0],[5461,10922,1],[10923,16383,2]],"moves":[{"first":5461,"last":5470,"from":1,"to":0,"state":"copying"}]}`, string(b))
	got, err := decodeSlotMap(b, 42)
	require.NoError(t, err)
	m.Version = 42
	require.Equal(t, m, got)
	require.Equal(t, "/logkv/c1/slots", slotsKey("c1"), "docs/cluster.md's layout")
	require.Equal(t, "c", got.table().shardOf(keySlot([]byte("a"))), "slot 15495")
}

func TestSlotMapDecodeRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"not json":        `{`,
		"format 2":        `{"v":2,"shards":["a"],"ranges":[[0,16383,0]]}`,
		"unknown field":   `{"v":1,"shards":["a"],"ranges":[[0,16383,0]],"x":1}`,
		"trailing":        `{"v":1,"shards":["a"],"ranges":[[0,16383,0]]} {}`,
		"no shards":       `{"v":1,"shards":[],"ranges":[[0,16383,0]]}`,
		"gap":             `{"v":1,"shards":["a"],"ranges":[[0,10,0],[12,16383,0]]}`,
		"overlap":         `{"v":1,"shards":["a"],"ranges":[[0,10,0],[10,16383,0]]}`,
		"short":           `{"v":1,"shards":["a"],"ranges":[[0,16382,0]]}`,
		"past the end":    `{"v":1,"shards":["a"],"ranges":[[0,16384,0]]}`,
		"bad shard":       `{"v":1,"shards":["a"],"ranges":[[0,16383,1]]}`,
		"reversed":        `{"v":1,"shards":["a"],"ranges":[[0,0,0],[16383,1,0]]}`,
		"empty name":      `{"v":1,"shards":[""],"ranges":[[0,16383,0]]}`,
		"space in name":   `{"v":1,"shards":["a b"],"ranges":[[0,16383,0]]}`,
		"negative":        `{"v":1,"shards":["a"],"ranges":[[-1,16383,0]]}`,
		"move to self":    `{"v":1,"shards":["a","b"],"ranges":[[0,16383,0]],"moves":[{"first":0,"last":1,"from":0,"to":0,"state":"copying"}]}`,
		"move not owned":  `{"v":1,"shards":["a","b"],"ranges":[[0,16383,0]],"moves":[{"first":0,"last":1,"from":1,"to":0,"state":"copying"}]}`,
		"move state":      `{"v":1,"shards":["a","b"],"ranges":[[0,16383,0]],"moves":[{"first":0,"last":1,"from":0,"to":1,"state":"done"}]}`,
		"moved twice":     `{"v":1,"shards":["a","b","c"],"ranges":[[0,16383,0]],"moves":[{"first":0,"last":5,"from":0,"to":1,"state":"copying"},{"first":5,"last":6,"from":0,"to":2,"state":"copying"}]}`,
		"move two ranges": `{"v":1,"shards":["a","b"],"ranges":[[0,9,0],[10,16383,0]],"moves":[{"first":0,"last":10,"from":0,"to":1,"state":"copying"}]}`,
		"too large":       `{"v":1,"shards":["` + strings.Repeat("a", maxSlotMapSize) + `"]}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decodeSlotMap([]byte(in), 1)
			require.Error(t, err)
		})
	}
	m, err := decodeSlotMap([]byte(`{"v":1,"shards":["a","b"],"ranges":[[0,9,0],[10,16383,0]]}`), 1)
	require.NoError(t, err, "adjacent ranges with one owner are allowed")
	require.Equal(t, "a", m.table().shardOf(16383))
}

// FuzzSlotMapDecode: no input panics or gets past validation unless it
// encodes back to a map that decodes to the same thing, and every slot of an
// accepted map has exactly one owner.
func FuzzSlotMapDecode(f *testing.F) {
	for _, n := range []int{1, 3} {
		shards := []string{"a", "b", "c"}[:n]
		m, err := evenSlotMap(shards)
		require.NoError(f, err)
		if n == 3 {
			m.Moves = []slotMove{{First: 0, Last: 3, From: 0, To: 2, State: moveSwitching}}
		}
		b, err := m.encode()
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"shards":["a","b"],"ranges":[[0,9,0],[10,16383,1]]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeSlotMap(b, 7)
		if err != nil {
			return
		}
		tab := m.table()
		for s := range numSlots {
			require.Less(t, int(tab.owner[s]), len(m.Shards))
			require.Equal(t, m.rangeOf(uint16(s)).Shard, tab.owner[s])
		}
		enc, err := m.encode()
		require.NoError(t, err)
		again, err := decodeSlotMap(enc, 7)
		require.NoError(t, err)
		require.Equal(t, m, again)
	})
}

// TestClusterCommandsPlainNode: a node that is no cluster member answers
// CLUSTER as a redis-server without cluster support does, byte for byte.
func TestClusterCommandsPlainNode(t *testing.T) {
	sock := redisServer(t)
	n := adminNode(t, nil)
	rn, err := net.Dial("unix", sock)
	require.NoError(t, err)
	defer rn.Close()
	redis := &diffConn{rn, bufio.NewReader(rn)}
	kv := dialRawAdmin(t, n)
	require.Equal(t, "+OK\r\n", redis.do(t, []string{"auth", adminPassword}))
	for _, args := range [][]string{
		{"cluster", "keyslot", "foo"}, {"cluster", "info"}, {"cluster", "myid"}, {"cluster", "slots"},
		{"cluster", "shards"}, {"cluster", "nodes"}, {"CLUSTER", "Help"}, {"cluster", "countkeysinslot", "1"},
		{"cluster"}, {"cluster", "foo"}, {"cluster", "keyslot"}, {"cluster", "keyslot", "a", "b"},
		{"cluster", "info", "x"}, {"cluster", "setslot", "1"}, {"cluster", "addslots"},
		{"readonly"}, {"readwrite"}, {"asking"}, {"readonly", "x"}, {"command", "info", "readonly", "readwrite", "asking"}, // CLUSTER's lists no subcommands here
		{"command", "docs", "readonly"},
	} {
		require.Equal(t, redis.do(t, args), kv.do(args...), "%q", args)
	}
}

// TestClusterCommandsMember: CLUSTER KEYSLOT, MYID and INFO on a cluster
// member, with no slot map (its shard owns every slot), with a map that
// gives half the slots to a shard with no leader, and with a damaged map.
func TestClusterCommandsMember(t *testing.T) {
	requireEtcdCluster(t)
	ctx := context.Background()
	tc := newTestCluster(t, time.Second)
	tc.add("a")
	tc.add("b")
	leader := tc.leader(20 * time.Second)
	var follower *clusterMember
	for _, m := range tc.nodes {
		if m != leader {
			follower = m
		}
	}
	c := redis.NewClient(&redis.Options{Addr: follower.n.Addr()})
	defer c.Close()

	slot, err := c.ClusterKeySlot(ctx, "{user1000}.following").Result()
	require.NoError(t, err)
	require.Equal(t, int64(3443), slot)

	id, err := c.Do(ctx, "cluster", "myid").Text()
	require.NoError(t, err)
	require.Regexp(t, `^[0-9a-f]{40}$`, id)
	require.Equal(t, clusterNodeID("c1", follower.name), id)
	require.NotEqual(t, clusterNodeID("c1", leader.name), id)

	info := func() string {
		t.Helper()
		s, err := c.ClusterInfo(ctx).Result()
		require.NoError(t, err)
		return s
	}
	s := info()
	for _, want := range []string{"cluster_state:ok\r\n", "cluster_slots_assigned:16384\r\n", "cluster_slots_ok:16384\r\n",
		"cluster_slots_fail:0\r\n", "cluster_known_nodes:2\r\n", "cluster_size:1\r\n"} {
		require.Contains(t, s, want)
	}
	epoch := leader.cb().clusterLeader().Epoch
	require.Contains(t, s, fmt.Sprintf("cluster_my_epoch:%d\r\n", epoch))

	// CLUSTER SLOTS: every slot on the leader, then the follower.
	node := func(m *clusterMember) []any {
		host, port, err := net.SplitHostPort(m.n.Addr())
		require.NoError(t, err)
		p, err := strconv.Atoi(port)
		require.NoError(t, err)
		return []any{host, int64(p), clusterNodeID("c1", m.name), map[any]any{}} // RESP3 (go-redis's default): the metadata is a map
	}
	slots, err := c.Do(ctx, "cluster", "slots").Slice()
	require.NoError(t, err)
	require.Equal(t, []any{[]any{int64(0), int64(16383), node(leader), node(follower)}}, slots)

	// A one-shard cluster serves a Redis Cluster client, given only the
	// follower's address: it finds the leader by CLUSTER SLOTS.
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{follower.n.Addr()}})
	defer cc.Close()
	for i := range 100 {
		require.NoError(t, cc.Set(ctx, "k"+strconv.Itoa(i), i, 0).Err())
	}
	for i := range 100 {
		require.Equal(t, strconv.Itoa(i), cc.Get(ctx, "k"+strconv.Itoa(i)).Val())
	}

	// Half the slots to shard "x", which has no leader.
	m := &slotMap{Shards: []string{"0", "x"}, Ranges: []slotRange{{0, 8191, 0}, {8192, 16383, 1}}}
	b, err := m.encode()
	require.NoError(t, err)
	cli := leader.cb().cli
	_, err = cli.Put(ctx, slotsKey("c1"), string(b))
	require.NoError(t, err)
	s = info()
	for _, want := range []string{"cluster_state:fail\r\n", "cluster_slots_ok:8192\r\n", "cluster_slots_fail:8192\r\n", "cluster_size:2\r\n"} {
		require.Contains(t, s, want)
	}
	slots, err = c.Do(ctx, "cluster", "slots").Slice()
	require.NoError(t, err)
	require.Equal(t, []any{[]any{int64(0), int64(8191), node(leader), node(follower)}}, slots, "shard x has no leader: its slots are left out")

	_, err = cli.Put(ctx, slotsKey("c1"), `{"v":1,"shards":["0"],"ranges":[[0,10,0]]}`)
	require.NoError(t, err)
	require.ErrorContains(t, c.ClusterInfo(ctx).Err(), "/logkv/c1/slots")

	require.ErrorContains(t, c.Do(ctx, "cluster", "addslots", "1").Err(), "assigned with kvnode cluster")
	require.ErrorContains(t, c.Do(ctx, "cluster", "nosuch").Err(), "unknown subcommand 'nosuch'")
	for _, cmd := range []string{"readonly", "readwrite", "asking"} {
		require.NoError(t, c.Do(ctx, cmd).Err(), cmd)
	}
}

// shardLeaders polls until each shard of members has exactly one running
// member that takes writes, every running member of the shard names it,
// and every running member routes by a slot map of at least version
// (0: any table), and returns each shard's leader.
func (tc *testCluster) shardLeaders(shardOf map[string]string, version int64, within time.Duration) map[string]*clusterMember {
	t := tc.t
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		leaders := map[string]*clusterMember{}
		ok := true
		for name, m := range tc.nodes {
			if m.n == nil {
				continue
			}
			if !m.cb().IsFollower() {
				require.Nil(t, leaders[shardOf[name]], "two members of shard %s take writes", shardOf[name])
				leaders[shardOf[name]] = m
			}
			if tab := m.cb().route.table.Load(); tab == nil || (version > 0 && tab.version < version) {
				ok = false
			}
		}
		for name, m := range tc.nodes {
			if m.n == nil {
				continue
			}
			l, cl := leaders[shardOf[name]], m.cb().clusterLeader()
			if l == nil || cl == nil || cl.ID != l.name {
				ok = false
			}
			// The member's table names the shard's leader (what MOVED sends
			// clients to).
			if tab := m.cb().route.table.Load(); ok && tab != nil && tab != notSharded {
				for i, s := range tab.shards {
					if leaders[s] == nil || tab.leaders[i] != leaders[s].n.Addr() {
						ok = false
					}
				}
			}
		}
		if ok {
			return leaders
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader per shard with slot map version %d within %v: leaders %v", version, within, leaders)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}

// keyOfShard returns a key whose slot shard s owns in m.
func keyOfShard(t *testing.T, m *slotMap, s string) string {
	tab := m.table()
	for i := range 100000 {
		k := "k" + strconv.Itoa(i)
		if tab.shardOf(keySlot([]byte(k))) == s {
			return k
		}
	}
	t.Fatalf("no key of shard %s", s)
	return ""
}

// TestShards: three shards of two members each and a real etcd. kvnode
// cluster init spreads the slots; a go-redis ClusterClient writes and
// reads 1000 keys across the shards, each shard holds only its own slots'
// keys, and a shard's leader SIGKILLed (its lease left to expire) is
// replaced while the client goes on. MOVED, CROSSSLOT, READONLY followers,
// MULTI/EXEC across slots, CLUSTER SHARDS and NODES are checked on the way.
func TestShards(t *testing.T) {
	requireEtcdCluster(t)
	ctx := context.Background()
	tc := newTestCluster(t, time.Second)
	shardOf := map[string]string{}
	for _, s := range []string{"a", "b", "c"} {
		for i := 1; i <= 2; i++ {
			name := s + strconv.Itoa(i)
			shardOf[name] = s
			tc.add(name, func(c *Config) { c.Cluster.Shard = s })
		}
	}
	tc.shardLeaders(shardOf, 0, 30*time.Second)

	var out, errOut strings.Builder
	etcdArgs := []string{"-etcd", tc.etcd.Endpoint, "-cluster", tc.name}
	require.Equal(t, 0, Main(append([]string{"cluster", "init", "-shards", "a,b,c"}, etcdArgs...), &out, &errOut), errOut.String())
	require.Contains(t, out.String(), "a                  5461")
	errOut.Reset()
	require.Equal(t, 1, Main(append([]string{"cluster", "init", "-shards", "a,b"}, etcdArgs...), &out, &errOut))
	require.Contains(t, errOut.String(), "has a slot map already")
	m, err := readSlotMap(ctx, tc.nodes["a1"].cb().cli, tc.name)
	require.NoError(t, err)
	leaders := tc.shardLeaders(shardOf, m.Version, 30*time.Second)
	out.Reset()
	require.Equal(t, 0, Main(append([]string{"cluster", "status"}, etcdArgs...), &out, &errOut), errOut.String())
	for _, s := range []string{"a", "b", "c"} {
		require.Regexp(t, `(?m)^`+s+` +\d+  `+leaders[s].name+` `, out.String())
		require.Contains(t, out.String(), "shard "+s+": ")
	}

	// A go-redis ClusterClient, given one follower's address, finds every
	// shard by CLUSTER SLOTS and follows MOVED.
	var follower *clusterMember
	for name, mm := range tc.nodes {
		if shardOf[name] == "a" && mm != leaders["a"] {
			follower = mm
		}
	}
	// A dead leader's address refuses connections and go-redis does not
	// reload the slots on that (only on MOVED, or every
	// ClusterStateReloadInterval, 60 s by default): with a redis-server
	// cluster it waits the same way. One second bounds the rediscovery.
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{follower.n.Addr()}, MaxRedirects: 8,
		ClusterStateReloadInterval: time.Second})
	defer cc.Close()
	const keys = 1000
	for i := range keys {
		require.NoError(t, cc.Set(ctx, "key:"+strconv.Itoa(i), i, 0).Err())
	}
	for i := range keys {
		require.Equal(t, strconv.Itoa(i), cc.Get(ctx, "key:"+strconv.Itoa(i)).Val())
	}
	// Each leader holds exactly its own slots' keys.
	tab := m.table()
	want := map[string]int64{}
	for i := range keys {
		want[tab.shardOf(keySlot([]byte("key:"+strconv.Itoa(i))))]++
	}
	for s, l := range leaders {
		require.Greater(t, want[s], int64(250), "shard %s", s)
		require.Equal(t, want[s], l.client(t).DBSize(ctx).Val(), "shard %s", s)
	}

	// MOVED, from a node of another shard and from a follower of the
	// owner; READONLY lets the follower read its own shard's keys.
	kb := keyOfShard(t, m, "b")
	plain := leaders["a"].client(t)
	slot := keySlot([]byte(kb))
	require.EqualError(t, plain.Set(ctx, kb, "x", 0).Err(), fmt.Sprintf("MOVED %d %s", slot, leaders["b"].n.Addr()))
	require.EqualError(t, plain.Get(ctx, kb).Err(), fmt.Sprintf("MOVED %d %s", slot, leaders["b"].n.Addr()))
	ka := keyOfShard(t, m, "a")
	require.NoError(t, plain.Set(ctx, ka, "va", 0).Err())
	fc := follower.client(t)
	fconn := fc.Conn()
	defer fconn.Close()
	require.EqualError(t, fconn.Get(ctx, ka).Err(), fmt.Sprintf("MOVED %d %s", keySlot([]byte(ka)), leaders["a"].n.Addr()))
	require.NoError(t, fconn.ReadOnly(ctx).Err())
	require.Eventually(t, func() bool { return fconn.Get(ctx, ka).Val() == "va" }, 10*time.Second, 10*time.Millisecond)
	require.EqualError(t, fconn.Set(ctx, ka, "x", 0).Err(), fmt.Sprintf("MOVED %d %s", keySlot([]byte(ka)), leaders["a"].n.Addr()), "READONLY reads only")
	require.EqualError(t, fconn.Get(ctx, kb).Err(), fmt.Sprintf("MOVED %d %s", slot, leaders["b"].n.Addr()), "another shard's key")
	require.NoError(t, fconn.ReadWrite(ctx).Err())
	require.Error(t, fconn.Get(ctx, ka).Err())

	// CROSSSLOT: keys of two slots in one command, and in one transaction
	// (EXEC discards it: nothing applies); MOVED while queued aborts it.
	ka2 := "{" + ka + "}2"
	kaOther := ka + "x" // another slot of shard a
	for keySlot([]byte(kaOther)) == keySlot([]byte(ka)) || m.table().shardOf(keySlot([]byte(kaOther))) != "a" {
		kaOther += "x"
	}
	require.EqualError(t, plain.MSet(ctx, ka, "1", kb, "2").Err(), errCrossSlot)
	require.EqualError(t, plain.MGet(ctx, ka, kaOther).Err(), errCrossSlot)
	require.NoError(t, plain.MSet(ctx, ka, "1", ka2, "2").Err(), "one hash tag, one slot")
	rc := dialRaw(t, leaders["a"].n)
	require.Equal(t, "+OK\r\n", rc.do("multi"))
	require.Equal(t, "+QUEUED\r\n", rc.do("set", ka, "t1"))
	require.Equal(t, "+QUEUED\r\n", rc.do("set", kaOther, "t2"))
	require.Equal(t, "-"+errCrossSlot+"\r\n", rc.do("exec"))
	require.Equal(t, "-ERR EXEC without MULTI\r\n", rc.do("exec"), "the transaction is discarded")
	require.Equal(t, "$1\r\n1\r\n", rc.do("get", ka))
	require.Equal(t, "+OK\r\n", rc.do("multi"))
	require.Equal(t, fmt.Sprintf("-MOVED %d %s\r\n", slot, leaders["b"].n.Addr()), rc.do("set", kb, "t3"))
	require.Equal(t, "+QUEUED\r\n", rc.do("set", ka, "t4"))
	require.Equal(t, "-EXECABORT Transaction discarded because of previous errors.\r\n", rc.do("exec"))
	require.Equal(t, "$1\r\n1\r\n", rc.do("get", ka))
	require.Equal(t, "+OK\r\n", rc.do("multi"))
	require.Equal(t, "+QUEUED\r\n", rc.do("set", ka, "t5"))
	require.Equal(t, "+QUEUED\r\n", rc.do("ping"))
	require.Equal(t, "*2\r\n+OK\r\n+PONG\r\n", rc.do("exec"))
	require.Equal(t, "-"+errSelectMode+"\r\n", rc.do("select", "1"))
	require.Contains(t, rc.do("info", "cluster"), "cluster_enabled:1\r\n")

	// CLUSTER SHARDS and NODES, as go-redis parses them.
	shards, err := plain.ClusterShards(ctx).Result()
	require.NoError(t, err)
	require.Len(t, shards, 3)
	for _, sh := range shards {
		require.Len(t, sh.Slots, 1)
		require.Len(t, sh.Nodes, 2)
		require.Equal(t, "master", sh.Nodes[0].Role)
		require.Equal(t, "replica", sh.Nodes[1].Role)
		owner := tab.shardOf(uint16(sh.Slots[0].Start))
		require.Equal(t, clusterNodeID(tc.name, leaders[owner].name), sh.Nodes[0].ID)
		require.Equal(t, int(tab.owner[sh.Slots[0].End]), int(tab.owner[sh.Slots[0].Start]))
	}
	nodes, err := plain.ClusterNodes(ctx).Result()
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(nodes, "\n"), "\n")
	require.Len(t, lines, 6)
	masters := 0
	for _, l := range lines {
		f := strings.Fields(l)
		require.GreaterOrEqual(t, len(f), 8, l)
		if strings.Contains(f[2], "master") {
			masters++
			require.Len(t, f, 9, "a master's line ends with its range: %s", l)
		} else {
			require.Len(t, f, 8, l)
			require.Regexp(t, `^[0-9a-f]{40}$`, f[3])
		}
	}
	require.Equal(t, 3, masters)
	require.Contains(t, nodes, clusterNodeID(tc.name, leaders["a"].name)+" "+leaders["a"].n.Addr()+"@0 myself,master - 0 0 ")

	// A leader killed: its lease expires, its follower takes over, and the
	// ClusterClient, rediscovering the shard, goes on writing to every
	// shard and reads everything back.
	tc.crash(leaders["b"])
	deadline := time.Now().Add(30 * time.Second)
	for i := keys; i < keys+100; i++ {
		for {
			err := cc.Set(ctx, "key:"+strconv.Itoa(i), i, 0).Err()
			if err == nil {
				break
			}
			require.True(t, time.Now().Before(deadline), "write %d after the leader kill: %v", i, err)
			time.Sleep(20 * time.Millisecond) // the client's own retries ran out; try again until the deadline
		}
	}
	after := tc.shardLeaders(shardOf, m.Version, 30*time.Second)
	require.NotEqual(t, leaders["b"].name, after["b"].name)
	for i := range keys + 100 {
		require.Equal(t, strconv.Itoa(i), cc.Get(ctx, "key:"+strconv.Itoa(i)).Val(), "key %d", i)
	}
}

// routeFixture is a node whose backend is a cluster member's, with the
// slot table t, and a client that sent READONLY: the member is a follower
// (it has not joined), so a read of its own shard's slot runs here and
// anything else is redirected.
func routeFixture(t *slotTable) (*Node, *client) {
	b := &clusterBackend{}
	b.route.table.Store(t)
	return &Node{backend: b}, &client{authed: true, readonly: true}
}

// oneShardTable is a table with every slot on shard "0", this member's,
// whose leader is at leader.
func oneShardTable(leader string) *slotTable {
	m, _ := evenSlotMap([]string{"0"})
	t := m.table()
	t.leaders, t.self = []string{leader}, 0
	return t
}

// TestRouteNoAlloc: deciding that a command runs here allocates nothing,
// with a slot table (one CRC per key) and without one (not sharded), and
// a plain node is not asked at all.
func TestRouteNoAlloc(t *testing.T) {
	get := [][]byte{[]byte("GET"), []byte("user:1000")}
	mget := [][]byte{[]byte("MGET"), []byte("{u}1"), []byte("{u}2"), []byte("{u}3")}
	for name, tab := range map[string]*slotTable{"sharded": oneShardTable("127.0.0.1:1"), "not sharded": notSharded} {
		n, c := routeFixture(tab)
		for _, args := range [][][]byte{get, mget} {
			cm := lookup(args[0])
			require.False(t, n.misrouted(c, cm, args), "%s %q", name, args)
			require.Zero(t, testing.AllocsPerRun(1000, func() { n.misrouted(c, cm, args) }), "%s %q", name, args)
		}
	}
	plain := &Node{backend: &standalone{}}
	require.False(t, plain.misrouted(&client{}, lookup(get[0]), get))
}

// TestRouteDecisions: the reply of every case of slotTable.redirect and
// route, without etcd.
func TestRouteDecisions(t *testing.T) {
	m, err := evenSlotMap([]string{"a", "b"})
	require.NoError(t, err)
	tab := m.table()
	tab.leaders, tab.self, tab.selfAddr = []string{"127.0.0.1:1", ""}, 0, "127.0.0.1:9"
	ka, kb := keyOfShard(t, m, "a"), keyOfShard(t, m, "b")
	sa := keySlot([]byte(ka))
	require.Equal(t, "", tab.redirect(sa, false, false), "the leader serves its slots")
	require.Equal(t, "", tab.redirect(sa, true, true), "a READONLY follower serves reads")
	require.Equal(t, fmt.Sprintf("MOVED %d 127.0.0.1:1", sa), tab.redirect(sa, false, true), "a follower sends the rest to its leader")
	require.Equal(t, errClusterDown, tab.redirect(keySlot([]byte(kb)), false, false), "shard b has no leader")
	var unknown *slotTable
	require.Equal(t, errClusterDown, unknown.redirect(sa, false, false), "etcd not read yet")
	tab.leaders[0] = tab.selfAddr
	require.Equal(t, "", tab.redirect(sa, false, true), "named leader, not yet leading: not MOVED to itself")

	n, c := routeFixture(tab)
	c.readonly = false
	out := func(args ...string) (bool, string) {
		c.conn = &replyConn{n: n, c: c, check: 1 << 30}
		b := make([][]byte, len(args))
		for i, a := range args {
			b[i] = []byte(a)
		}
		return n.misrouted(c, lookup(b[0]), b), string(c.conn.out)
	}
	tab.leaders[0] = "127.0.0.1:1"
	ok, reply := out("mset", ka, "1", kb, "2")
	require.True(t, ok)
	require.Equal(t, "-"+errCrossSlot+"\r\n", reply)
	ok, _ = out("ping")
	require.False(t, ok, "keyless commands run here")
	ok, _ = out("get")
	require.False(t, ok, "wrong arity is run's error")
	ok, reply = out("select", "2")
	require.True(t, ok)
	require.Equal(t, "-"+errSelectMode+"\r\n", reply)
	ok, _ = out("select", "0")
	require.False(t, ok)
	c.authed = false
	ok, _ = out("get", kb)
	require.False(t, ok, "NOAUTH comes first")
}

// BenchmarkRoute is the command path's slot check: a plain node, a
// cluster member without a slot map, and one with a map (one CRC per
// key).
func BenchmarkRoute(b *testing.B) {
	args := [][]byte{[]byte("GET"), []byte("key:000000123456")}
	cm := lookup(args[0])
	for _, tc := range []struct {
		name string
		n    *Node
		c    *client
	}{
		{"plain", &Node{backend: &standalone{}}, &client{authed: true}},
		{"not-sharded", nil, nil},
		{"sharded", nil, nil},
	} {
		switch tc.name {
		case "not-sharded":
			tc.n, tc.c = routeFixture(notSharded)
		case "sharded":
			tc.n, tc.c = routeFixture(oneShardTable("127.0.0.1:1"))
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if tc.n.misrouted(tc.c, cm, args) {
					b.Fatal("misrouted")
				}
			}
		})
	}
}

// TestCRC16Slicing: the slicing-by-8 CRC equals the byte-at-a-time one at
// every length and alignment (TestKeySlotRedis checks both against Redis).
func TestCRC16Slicing(t *testing.T) {
	bytewise := func(b []byte) uint16 {
		var c uint16
		for _, x := range b {
			c = c<<8 ^ crc16Table[byte(c>>8)^x]
		}
		return c
	}
	r := rand.New(rand.NewPCG(16, 8))
	buf := make([]byte, 300)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for off := range 8 {
		for n := 0; off+n <= len(buf); n++ {
			require.Equal(t, bytewise(buf[off:off+n]), crc16(buf[off:off+n]), "offset %d length %d", off, n)
		}
	}
}
