package node

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/logkv/logkv/replicate/coord"
)

const clusterUsage = `usage: kvnode cluster init|status|failover|drain|undrain -etcd URL[,URL] -cluster NAME [-shard S] [-to ID] [-timeout 30s] [NODE]
  init -shards a,b  write the slot map: the 16384 slots spread evenly over the shards (once)
  status            the slot map, and each shard's members, leader, epochs, lag
  failover [-to ID] hand leadership to ID (default: the most caught-up eligible follower)
  drain NODE        NODE never runs for leader; if it leads, it hands leadership over first
  undrain NODE      NODE may lead again`

// mainCluster is `kvnode cluster status|failover|drain|undrain`: it reads
// (and, for the others, writes) the cluster's keys in etcd; it needs no
// node running on this machine.
func mainCluster(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || !slices.Contains([]string{"init", "status", "failover", "drain", "undrain"}, args[0]) {
		fmt.Fprintln(stderr, clusterUsage)
		return 2
	}
	sub := args[0]
	args = args[1:]
	var node string
	if (sub == "drain" || sub == "undrain") && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		node, args = args[0], args[1:] // drain NODE -etcd ...
	}
	fs := flag.NewFlagSet("kvnode cluster "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	etcd := fs.String("etcd", "", "etcd client `URLs`, comma-separated (required)")
	name := fs.String("cluster", "", "cluster `name` (required)")
	to := fs.String("to", "", "failover: the member `id` to hand leadership to (default: the most caught-up eligible follower)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for etcd and, for failover, for the new leader")
	config := fs.String("config", "", "read etcd_endpoints, name and etcd TLS/auth from this node config `file`'s cluster section")
	shard := fs.String("shard", "", "the `shard` (replica group) to show or operate (default: every shard for status, else 0)")
	shards := fs.String("shards", "", "init: the shards, comma-separated, to spread the slots over (cli_shards.go)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if node == "" && fs.NArg() == 1 {
		node = fs.Arg(0) // drain -etcd ... NODE
	} else if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kvnode cluster %s: unexpected arguments %q\n%s\n", sub, fs.Args(), clusterUsage)
		return 2
	}
	if (sub == "drain" || sub == "undrain") != (node != "") {
		fmt.Fprintf(stderr, "kvnode cluster %s: name the node only to drain or undrain it\n%s\n", sub, clusterUsage)
		return 2
	}
	cfg := DefaultConfig()
	if *config != "" {
		var err error
		if cfg, err = LoadConfig(*config); err != nil {
			fmt.Fprintf(stderr, "kvnode cluster: %v\n", err)
			return 2
		}
	}
	if *etcd != "" {
		cfg.Cluster.EtcdEndpoints = strings.Split(*etcd, ",")
	}
	if *name != "" {
		cfg.Cluster.Name = *name
	}
	if !cfg.Cluster.enabled() || cfg.Cluster.Name == "" {
		fmt.Fprintln(stderr, "kvnode cluster: give -etcd URL and -cluster NAME (or -config FILE with a cluster section)")
		return 2
	}
	n := &Node{cfg: cfg}
	cli, err := n.etcdClient()
	if err != nil {
		fmt.Fprintf(stderr, "kvnode cluster: %v\n", err)
		return 1
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	switch sub {
	case "init":
		return clusterInit(ctx, cli, cfg.Cluster.Name, *shards, stdout, stderr)
	case "status":
		return clusterStatus(ctx, cli, cfg.Cluster.Name, *shard, stdout, stderr)
	case "drain":
		l, err := coord.Drain(ctx, cli, cfg.Cluster.Name, *shard, node)
		if err != nil {
			fmt.Fprintf(stderr, "kvnode cluster drain: %v\n", err)
			return 1
		}
		if l == nil {
			fmt.Fprintf(stdout, "%s drained; the cluster has no leader now\n", node)
		} else {
			fmt.Fprintf(stdout, "%s drained; leader is %s (%s), epoch %d\n", node, l.ID, l.RESP, l.Epoch)
		}
		return 0
	case "undrain":
		if err := coord.Undrain(ctx, cli, cfg.Cluster.Name, *shard, node); err != nil {
			fmt.Fprintf(stderr, "kvnode cluster undrain: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s may lead again\n", node)
		return 0
	}
	l, err := coord.HandOver(ctx, cli, cfg.Cluster.Name, *shard, *to) // failover
	if err != nil {
		fmt.Fprintf(stderr, "kvnode cluster failover: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "leader is now %s (%s), epoch %d\n", l.ID, l.RESP, l.Epoch)
	return 0
}

// writeStatus prints a shard's members, leader, epochs and lag.
func writeStatus(w io.Writer, name string, st *coord.Shard) {
	fmt.Fprintf(w, "cluster %s (etcd revision %d)\n", name, st.Revision)
	var lead uint64
	if l := st.Leader; l != nil {
		fmt.Fprintf(w, "leader: %s  resp %s  repl %s  epoch %d\n", l.ID, l.RESP, l.Repl, l.Epoch)
		lead = st.Progress[l.ID].Durable
	} else {
		fmt.Fprintln(w, "leader: none (an election is under way, or no member may lead)")
	}
	if s := st.Sync; s != nil {
		fmt.Fprintf(w, "sync set: %s  quorum %d\n", strings.Join(s.Set, ","), s.Quorum)
	}
	if h := st.Handoff; h != nil {
		fmt.Fprintf(w, "handoff in progress to %s\n", h.Target)
	}
	ids := make([]string, 0, len(st.Members))
	for id := range st.Members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	fmt.Fprintf(w, "%-16s %-8s %-22s %-22s %8s %12s %20s %8s\n", "MEMBER", "ROLE", "RESP", "REPL", "PRIORITY", "DURABLE", "EPOCH", "LAG")
	for _, id := range ids {
		mi := st.Members[id]
		role := "follower"
		if st.Leader != nil && st.Leader.ID == id {
			role = "leader"
		}
		prio := fmt.Sprint(mi.Priority)
		if mi.NeverLeader {
			prio = "never"
		} else if st.Drained[id] {
			prio = "drained"
		}
		p, ok := st.Progress[id]
		durable, epoch, lag := "-", "-", "-"
		if ok {
			durable, epoch = fmt.Sprint(p.Durable), fmt.Sprint(p.Epoch)
			if st.Leader != nil && lead >= p.Durable {
				lag = fmt.Sprint(lead - p.Durable)
			}
		}
		fmt.Fprintf(w, "%-16s %-8s %-22s %-22s %8s %12s %20s %8s\n", id, role, mi.RESP, mi.Repl, prio, durable, epoch, lag)
	}
	var gone []string
	for id := range st.Drained {
		if _, live := st.Members[id]; !live {
			gone = append(gone, id)
		}
	}
	if len(gone) > 0 {
		sort.Strings(gone)
		fmt.Fprintf(w, "drained, not running: %s\n", strings.Join(gone, ","))
	}
}
