// Command kvclustersim measures what a sharded logkv cluster costs etcd: it
// runs shards x members lightweight members in one process against one
// etcd, each with its own etcd client and the coordination code a kvnode
// runs (replicate/coord: lease, progress reports, election; and the slot
// watcher's reads and watches), and reports etcd's load, how fast a slot map
// change reaches every member and how fast a killed leader is replaced.
// docs/cluster-scale.md has the runs and what they found.
//
//	kvclustersim -shards 100 -members 3 -steady 20s -map-updates 20 -kills 5
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/logkv/logkv/cmd/kvclustersim/internal/sim"
)

func main() {
	var cfg sim.Config
	flag.IntVar(&cfg.Shards, "shards", 100, "replica groups")
	flag.IntVar(&cfg.Members, "members", 3, "members per shard")
	flag.IntVar(&cfg.StartRate, "start-rate", 0, "members started per second (0: all at once, as after a power cut)")
	flag.DurationVar(&cfg.TTL, "ttl", 0, "lease TTL, whole seconds (default coord's, 2s)")
	flag.IntVar(&cfg.SyncQuorum, "sync-quorum", 0, "coord's sync quorum (0: async mode)")
	flag.BoolVar(&cfg.Busy, "busy", true, "model shards taking writes: every member reports progress every 200 ms; false: members report once")
	flag.DurationVar(&cfg.Steady, "steady", 20e9, "length of the quiet phase")
	flag.IntVar(&cfg.MapUpdates, "map-updates", 20, "slot map changes (each a move's flip of 8 slots), each waited for until every member read it")
	flag.DurationVar(&cfg.MapGap, "map-gap", 200e6, "pause between map changes")
	flag.IntVar(&cfg.Kills, "kills", 5, "rounds of leader kills")
	flag.IntVar(&cfg.KillBatch, "kill-batch", 1, "leaders killed at once in each round")
	flag.DurationVar(&cfg.Converge, "converge", 0, "bound on each wait for the members to agree (default 1m)")
	flag.StringVar(&cfg.Endpoint, "etcd", "", "etcd client URL to run against (default: start one)")
	flag.IntVar(&cfg.Pid, "etcd-pid", 0, "with -etcd, its process id, to measure its CPU and RSS")
	flag.StringVar(&cfg.EtcdBin, "etcd-bin", "etcd", "etcd binary to start")
	flag.StringVar(&cfg.Cluster, "cluster", "sim", "cluster name (keys under /logkv/NAME/)")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "random seed (slots moved, leaders killed)")
	scratch := flag.String("dir", "", "where the started etcd keeps its data (default: a temp dir; /dev/shm gives an etcd whose fsyncs cost nothing)")
	asJSON := flag.Bool("json", false, "print the report as JSON")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "kvclustersim: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	dir, err := os.MkdirTemp(*scratch, "kvclustersim-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvclustersim:", err)
		os.Exit(1)
	}
	defer removeScratch(dir)
	cfg.Dir = dir
	cfg.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := sim.Run(ctx, cfg)
	if rep != nil {
		if *asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(rep); err != nil {
				fmt.Fprintln(os.Stderr, "kvclustersim:", err)
			}
		} else {
			sim.Print(os.Stdout, rep)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvclustersim:", err)
		removeScratch(dir)
		os.Exit(1)
	}
}

// removeScratch removes the run's etcd data directory, saying so if it
// cannot (the directory is then the user's to remove).
func removeScratch(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintf(os.Stderr, "kvclustersim: remove %s: %v\n", dir, err)
	}
}
