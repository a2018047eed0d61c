package node

// The Redis Sentinel protocol, served by every cluster member from its view
// of etcd, so that Sentinel-aware clients (go-redis NewFailoverClient,
// redis-py Sentinel, ioredis sentinels:) find the leader and follow a
// failover with no code change. The cluster's name is the master name.
//
//	SENTINEL get-master-addr-by-name NAME  -> [ip, port] of the leader (null if none)
//	SENTINEL masters / master NAME         -> the leader's fields, as Sentinel's
//	SENTINEL replicas NAME / slaves NAME   -> every other member's fields
//	SENTINEL sentinels NAME                -> every other member (each answers SENTINEL)
//	SUBSCRIBE +switch-master               -> "NAME oldip oldport newip newport" on failover
//
// Only the channels Sentinel clients subscribe to are served:
// +switch-master, where failovers are published, and +replica-reconf-done,
// which go-redis subscribes to and on which nothing is published here.

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/logkv/logkv/replicate/coord"
)

func init() {
	register(&command{name: "sentinel", arity: -2, slow: true, run: cmdSentinel})
	register(&command{name: "subscribe", arity: -2, run: cmdSubscribe})
	register(&command{name: "unsubscribe", arity: -1, run: cmdUnsubscribe})
}

// sentinelChannels are the channels SUBSCRIBE accepts.
var sentinelChannels = map[string]bool{"+switch-master": true, "+replica-reconf-done": true}

// maxSwitchPending bounds what one subscriber may have queued and unsent,
// as the output limits do for MONITOR (monitor.go).
const maxSwitchPending = 1 << 20

// switchSubs are the clients subscribed to the Sentinel channels.
type switchSubs struct {
	mu   sync.Mutex
	subs map[*client]map[string]bool // client -> its channels
}

func (s *switchSubs) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = nil
}

func (b *clusterBackend) sentinelView(c *client) (*coord.Member, bool) {
	m := b.member.Load()
	if m == nil {
		c.fail("ERR this cluster member has not joined yet; retry")
		return nil, false
	}
	return m, true
}

func clusterOf(n *Node, c *client) (*clusterBackend, bool) {
	b, ok := n.backend.(*clusterBackend)
	if !ok {
		c.fail("ERR SENTINEL and SUBSCRIBE serve cluster members only: start the node with -etcd URL -cluster NAME")
	}
	return b, ok
}

// cmdSentinel: SENTINEL subcommand [NAME].
func cmdSentinel(n *Node, c *client, args [][]byte) {
	b, ok := clusterOf(n, c)
	if !ok {
		return
	}
	m, ok := b.sentinelView(c)
	if !ok {
		return
	}
	sub := strings.ToLower(string(args[1]))
	name := n.cfg.Cluster.Name
	needName := func() bool {
		if len(args) != 3 {
			c.fail(fmt.Sprintf("ERR wrong number of arguments for 'sentinel|%s' command", sub))
			return false
		}
		if string(args[2]) != name {
			if sub == "get-master-addr-by-name" {
				c.conn.WriteNullArray()
				return false
			}
			c.fail("ERR No such master with that name")
			return false
		}
		return true
	}
	switch sub {
	case "get-master-addr-by-name":
		if !needName() {
			return
		}
		l := m.Leader()
		host, port, err := net.SplitHostPort(addrOf(l))
		if err != nil {
			c.conn.WriteNullArray()
			return
		}
		c.conn.WriteArray(2)
		c.conn.WriteBulkString(host)
		c.conn.WriteBulkString(port)
	case "masters", "master", "replicas", "slaves", "sentinels":
		if sub == "masters" && len(args) != 2 {
			c.fail("ERR wrong number of arguments for 'sentinel|masters' command")
			return
		}
		if sub != "masters" && !needName() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := coord.ReadShard(ctx, b.cli, name, "")
		if err != nil {
			c.fail("ERR cannot read the cluster from etcd (" + err.Error() + "); SENTINEL get-master-addr-by-name still answers from this node's last view")
			return
		}
		switch sub {
		case "masters":
			if st.Leader == nil {
				c.conn.WriteArray(0)
				return
			}
			c.conn.WriteArray(1)
			writeFields(c, masterFields(name, st))
		case "master":
			if st.Leader == nil {
				c.fail("ERR No such master with that name")
				return
			}
			writeFields(c, masterFields(name, st))
		default:
			var others []coord.MemberInfo
			for _, mi := range st.Members {
				if st.Leader == nil || mi.ID != st.Leader.ID {
					others = append(others, mi)
				}
			}
			sort.Slice(others, func(i, j int) bool { return others[i].ID < others[j].ID })
			c.conn.WriteArray(len(others))
			for _, mi := range others {
				if sub == "sentinels" {
					writeFields(c, sentinelFields(mi))
				} else {
					writeFields(c, replicaFields(mi, st))
				}
			}
		}
	default:
		c.fail(fmt.Sprintf("ERR unknown subcommand '%s'. This node answers SENTINEL get-master-addr-by-name, masters, master, replicas, slaves and sentinels.", args[1]))
	}
}

func addrOf(l *coord.Leader) string {
	if l == nil {
		return ""
	}
	return l.RESP
}

// field is one name/value pair of a Sentinel reply.
type field struct{ k, v string }

func writeFields(c *client, fs []field) {
	c.conn.WriteArray(2 * len(fs))
	for _, f := range fs {
		c.conn.WriteBulkString(f.k)
		c.conn.WriteBulkString(f.v)
	}
}

func hostPort(addr string) (string, string) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, "0"
	}
	return h, p
}

// masterFields are the fields of SENTINEL master, in Sentinel's order
// (sentinel.c, addReplySentinelRedisInstance); the timing fields Sentinel
// measures by pinging are 0 here, as etcd does the watching.
func masterFields(name string, st *coord.Shard) []field {
	l := st.Leader
	host, port := hostPort(l.RESP)
	replicas := 0
	for id := range st.Members {
		if id != l.ID {
			replicas++
		}
	}
	return []field{
		{"name", name}, {"ip", host}, {"port", port}, {"runid", l.ID}, {"flags", "master"},
		{"link-pending-commands", "0"}, {"link-refcount", "1"}, {"last-ping-sent", "0"},
		{"last-ok-ping-reply", "0"}, {"last-ping-reply", "0"}, {"down-after-milliseconds", "0"},
		{"info-refresh", "0"}, {"role-reported", "master"}, {"role-reported-time", "0"},
		{"config-epoch", strconv.FormatUint(l.Epoch, 10)}, {"num-slaves", strconv.Itoa(replicas)},
		{"num-other-sentinels", strconv.Itoa(max(len(st.Members)-1, 0))}, {"quorum", "1"},
		{"failover-timeout", "0"}, {"parallel-syncs", "1"},
	}
}

func replicaFields(mi coord.MemberInfo, st *coord.Shard) []field {
	host, port := hostPort(mi.RESP)
	flags, link := "slave", "ok"
	p, live := st.Progress[mi.ID]
	if !live {
		flags, link = "slave,s_down", "err"
	}
	mhost, mport := "?", "0"
	if st.Leader != nil {
		mhost, mport = hostPort(st.Leader.RESP)
	}
	prio := mi.Priority
	if mi.NeverLeader {
		prio = 0
	}
	return []field{
		{"name", mi.RESP}, {"ip", host}, {"port", port}, {"runid", mi.ID}, {"flags", flags},
		{"link-pending-commands", "0"}, {"link-refcount", "1"}, {"last-ping-sent", "0"},
		{"last-ok-ping-reply", "0"}, {"last-ping-reply", "0"}, {"down-after-milliseconds", "0"},
		{"info-refresh", "0"}, {"role-reported", "slave"}, {"role-reported-time", "0"},
		{"master-link-down-time", "0"}, {"master-link-status", link}, {"master-host", mhost},
		{"master-port", mport}, {"slave-priority", strconv.Itoa(prio)},
		{"slave-repl-offset", strconv.FormatUint(p.Durable, 10)},
	}
}

func sentinelFields(mi coord.MemberInfo) []field {
	host, port := hostPort(mi.RESP)
	return []field{
		{"name", mi.ID}, {"ip", host}, {"port", port}, {"runid", mi.ID}, {"flags", "sentinel"},
		{"link-pending-commands", "0"}, {"link-refcount", "1"}, {"last-ping-sent", "0"},
		{"last-ok-ping-reply", "0"}, {"last-ping-reply", "0"}, {"down-after-milliseconds", "0"},
		{"last-hello-message", "0"}, {"voted-leader", "?"}, {"voted-leader-epoch", "0"},
	}
}

// cmdSubscribe: SUBSCRIBE channel..., for the Sentinel channels only.
func cmdSubscribe(n *Node, c *client, args [][]byte) {
	b, ok := clusterOf(n, c)
	if !ok {
		return
	}
	for _, ch := range args[1:] {
		if !sentinelChannels[string(ch)] {
			c.fail(fmt.Sprintf("ERR this node publishes only Sentinel's +switch-master (and accepts +replica-reconf-done); channel '%s' is not served: kvnode has no general Pub/Sub", ch))
			return
		}
	}
	s := &b.subs
	s.mu.Lock()
	if s.subs == nil {
		s.subs = map[*client]map[string]bool{}
	}
	chans := s.subs[c]
	if chans == nil {
		chans = map[string]bool{}
		s.subs[c] = chans
		go func() { // forget the client when it leaves
			<-c.gone
			s.mu.Lock()
			delete(s.subs, c)
			s.mu.Unlock()
		}()
	}
	counts := make([]int, len(args)-1)
	for i, ch := range args[1:] {
		chans[string(ch)] = true
		counts[i] = len(chans)
	}
	s.mu.Unlock()
	for i, ch := range args[1:] {
		c.conn.WriteArray(3)
		c.conn.WriteBulkString("subscribe")
		c.conn.WriteBulk(ch)
		c.conn.WriteInt(counts[i])
	}
}

// cmdUnsubscribe: UNSUBSCRIBE [channel...].
func cmdUnsubscribe(n *Node, c *client, args [][]byte) {
	b, ok := clusterOf(n, c)
	if !ok {
		return
	}
	s := &b.subs
	s.mu.Lock()
	chans := s.subs[c]
	var names []string
	if len(args) == 1 {
		for ch := range chans {
			names = append(names, ch)
		}
		sort.Strings(names)
	} else {
		for _, a := range args[1:] {
			names = append(names, string(a))
		}
	}
	counts := make([]int, len(names))
	for i, ch := range names {
		delete(chans, ch)
		counts[i] = len(chans)
	}
	if chans != nil && len(chans) == 0 {
		delete(s.subs, c)
	}
	s.mu.Unlock()
	if len(names) == 0 {
		c.conn.WriteArray(3)
		c.conn.WriteBulkString("unsubscribe")
		c.conn.WriteNull()
		c.conn.WriteInt(0)
		return
	}
	for i, ch := range names {
		c.conn.WriteArray(3)
		c.conn.WriteBulkString("unsubscribe")
		c.conn.WriteBulkString(ch)
		c.conn.WriteInt(counts[i])
	}
}

// publishSwitches publishes +switch-master whenever the cluster's leader
// moves from one member to another.
func (b *clusterBackend) publishSwitches(ctx context.Context, m *coord.Member) {
	var last *coord.Leader
	for {
		ch := m.Changed()
		if l := m.Leader(); l != nil {
			if last != nil && last.RESP != l.RESP {
				oh, op := hostPort(last.RESP)
				nh, np := hostPort(l.RESP)
				b.publish("+switch-master", fmt.Sprintf("%s %s %s %s %s", b.n.cfg.Cluster.Name, oh, op, nh, np))
			}
			last = l
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// publish sends a message to the channel's subscribers, dropping one whose
// unsent replies pile up past maxSwitchPending.
func (b *clusterBackend) publish(channel, msg string) {
	line := fmt.Appendf(nil, "*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(channel), channel, len(msg), msg)
	s := &b.subs
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, chans := range s.subs {
		if !chans[channel] || c.gc == nil {
			continue
		}
		err := c.gc.AsyncWrite(line, func(gc gnet.Conn, err error) error {
			if err != nil || gc.OutboundBuffered() > maxSwitchPending {
				gc.Close()
			}
			return nil
		})
		if err != nil {
			delete(s.subs, c)
		}
	}
}
