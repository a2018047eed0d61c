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

const clusterUsage = `usage: kvnode cluster init|status|failover|drain|undrain|move-slots|rebalance|add-shard|remove-shard -etcd URL[,URL] -cluster NAME [-shard S] [-to ID] [-timeout 30s] [NODE]
  init -shards a,b  write the slot map: the 16384 slots spread evenly over the shards (once)
  status            the slot map, moves in progress, and each shard's members, leader, epochs, lag
  move-slots FROM TO FIRST-LAST [-nowait]
                    move slots FIRST-LAST from shard FROM to shard TO online, and wait for it
  move-slots -abort FIRST-LAST
                    stop a move that has not flipped: its source serves the slots as before
  rebalance [-dry-run]
                    spread the slots evenly over the map's shards, one move at a time
  add-shard NAME    name a new shard in the map (it owns no slot until a rebalance)
  remove-shard NAME move the shard's slots to the others, then drop it from the map
  failover [-to ID] hand leadership to ID (default: the most caught-up eligible follower)
  drain NODE        NODE never runs for leader; if it leads, it hands leadership over first
  undrain NODE      NODE may lead again`

// mainCluster is `kvnode cluster status|failover|drain|undrain`: it reads
// (and, for the others, writes) the cluster's keys in etcd; it needs no
// node running on this machine.
func mainCluster(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || !slices.Contains([]string{"init", "status", "failover", "drain", "undrain", "move-slots", "rebalance", "add-shard", "remove-shard"}, args[0]) {
		fmt.Fprintln(stderr, clusterUsage)
		return 2
	}
	sub := args[0]
	args = args[1:]
	var node string
	if (sub == "drain" || sub == "undrain") && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		node, args = args[0], args[1:] // drain NODE -etcd ...
	}
	var positional []string // move-slots FROM TO FIRST-LAST -etcd ..., add-shard NAME -etcd ...
	if sub == "move-slots" || sub == "add-shard" || sub == "remove-shard" {
		for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			positional, args = append(positional, args[0]), args[1:]
		}
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
	abort := fs.Bool("abort", false, "move-slots: abort the move of FIRST-LAST")
	nowait := fs.Bool("nowait", false, "move-slots: return once the move is in the map, without waiting for it")
	dryRun := fs.Bool("dry-run", false, "rebalance: print the moves, make none")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if sub == "move-slots" || sub == "add-shard" || sub == "remove-shard" {
		// Flags may follow the positional arguments too (-abort FIRST-LAST -etcd ...).
		for fs.NArg() > 0 {
			rest := fs.Args()
			for len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
				positional, rest = append(positional, rest[0]), rest[1:]
			}
			if err := fs.Parse(rest); err != nil {
				return 2
			}
		}
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
	if sub == "move-slots" || sub == "rebalance" || sub == "remove-shard" {
		// Moving data takes as long as it takes: without -timeout these
		// wait for it.
		timed := false
		fs.Visit(func(f *flag.Flag) { timed = timed || f.Name == "timeout" })
		if !timed {
			ctx, cancel = context.WithCancel(context.Background())
			defer cancel()
		}
	}
	switch sub {
	case "move-slots":
		return clusterMoveSlots(ctx, cli, cfg.Cluster.Name, positional, *abort, !*nowait, stdout, stderr)
	case "rebalance":
		return clusterRebalance(ctx, cli, cfg.Cluster.Name, "", *dryRun, stdout, stderr)
	case "add-shard", "remove-shard":
		if len(positional) != 1 {
			fmt.Fprintf(stderr, "kvnode cluster %s: name one shard\n%s\n", sub, clusterUsage)
			return 2
		}
		if err := validShardName(positional[0]); err != nil {
			fmt.Fprintf(stderr, "kvnode cluster %s: %v\n", sub, err)
			return 2
		}
		if sub == "add-shard" {
			return clusterAddShard(ctx, cli, cfg.Cluster.Name, positional[0], stdout, stderr)
		}
		return clusterRemoveShard(ctx, cli, cfg.Cluster.Name, positional[0], stdout, stderr)
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
