// Command kvhistory runs a three-node kvnode cluster under concurrent clients
// and a nemesis, and checks the recorded history for linearizability (see
// cmd/kvhistory/internal/history).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/logkv/logkv/cmd/kvhistory/internal/history"
	"github.com/redis/go-redis/v9"
)

func main() {
	dur := flag.Duration("duration", 20*time.Second, "workload duration")
	clients := flag.Int("clients", 6, "concurrent clients")
	ack := flag.String("ack", "sync", "replication ack mode: sync (quorum 1) or async")
	nem := flag.String("nemesis", "kill,pause,promote", "comma-separated faults: kill, pause, promote, partition; with -auto: kill-leader, pause-leader, partition-leader (the default), kill, pause")
	engine := flag.String("engine", "lsm", "the nodes' storage engine: lsm, bitcask or memory")
	workload := flag.String("workload", history.WorkloadRegister, "register (GET, SET) or expiry (GET, PTTL, SET [PXAT], PEXPIREAT, PERSIST with deadlines a few hundred ms ahead)")
	auto := flag.Bool("auto", false, "automatic failover: the nodes elect their leader through a real etcd (Debian's etcd-server); the nemesis kills, pauses and partitions the leader and never promotes")
	leaseTTL := flag.Duration("lease-ttl", time.Second, "with -auto, the leader lease's TTL (whole seconds)")
	failovers := flag.Int("failovers", 0, "with -auto, end the run after this many leader changes (-duration still bounds it) and fail if it saw fewer")
	shards := flag.Int("shards", 0, "a cluster of this many shards (a, b, ...) through etcd, slots spread by kvnode cluster init; clients route by slot and follow MOVED/ASK; the nemesis kills leaders and moves slots (kill-leader,move-slots, the default)")
	perShard := flag.Int("per-shard", 2, "with -shards, nodes per shard")
	checkTimeout := flag.Duration("check-timeout", time.Minute, "bound on porcupine's check")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "random seed")
	bin := flag.String("kvnode", "", "kvnode binary (default: go build ./cmd/kvnode)")
	work := flag.String("work", "", "scratch dir (default: a new temp dir, kept on failure)")
	verbose := flag.Bool("v", false, "log nemesis actions")
	flag.Parse()
	nemSet := false
	flag.Visit(func(f *flag.Flag) { nemSet = nemSet || f.Name == "nemesis" })
	if *auto && !nemSet {
		*nem = "kill-leader,pause-leader,partition-leader"
	}
	if *shards > 0 && !nemSet {
		*nem = "kill-leader,move-slots"
	}
	redis.SetLogger(quiet{}) // dial failures during faults are expected

	dir := *work
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "kvhistory-"); err != nil {
			fail(err)
		}
	}
	if *bin == "" {
		*bin = filepath.Join(dir, "kvnode")
		if out, err := exec.Command("go", "build", "-o", *bin, "./cmd/kvnode").CombinedOutput(); err != nil {
			fail(fmt.Errorf("go build ./cmd/kvnode (run from the repo root or pass -kvnode): %v: %s", err, out))
		}
	}
	cfg := history.Config{Kvnode: *bin, Work: dir, Ack: *ack, Duration: *dur, Clients: *clients, Seed: *seed,
		Engine: *engine, Workload: *workload, Auto: *auto, LeaseTTL: *leaseTTL, Failovers: *failovers,
		CheckTimeout: *checkTimeout, Shards: *shards, PerShard: *perShard}
	if *nem != "" {
		cfg.Nemesis = strings.Split(*nem, ",")
	}
	if *verbose {
		cfg.Logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, "kvhistory: "+f+"\n", a...) }
	}
	fmt.Printf("kvhistory: seed=%d engine=%s workload=%s ack=%s auto=%v duration=%s clients=%d nemesis=%s work=%s\n",
		*seed, *engine, *workload, *ack, *auto, *dur, *clients, *nem, dir)
	// Ctrl-C ends the workload early; the run still cleans up and checks.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := history.Run(ctx, cfg)
	if err != nil {
		fail(err)
	}
	if res.PartitionSkip != "" {
		fmt.Printf("partitions: skipped: %s\n", res.PartitionSkip)
	}
	fmt.Println(res.Summary(*ack))
	if *shards > 0 {
		fmt.Printf("shards=%d per_shard=%d redirects_followed=%d\n", *shards, *perShard, res.Redirects)
	}
	if len(res.Verdict.IllegalKeys) > 0 {
		fmt.Printf("not linearizable: keys %v (history.jsonl in the work dir has every operation, the node it went to, and the elections)\n", res.Verdict.IllegalKeys)
	}
	if res.Verdict.HTML != "" {
		fmt.Printf("visualisation: %s\n", res.Verdict.HTML)
	}
	fs := res.Failures(cfg)
	for _, f := range fs {
		fmt.Println("kvhistory: FAIL:", f)
	}
	failed := len(fs) > 0
	if failed {
		fmt.Printf("kvhistory: logs kept in %s\n", dir)
		os.Exit(1)
	}
	if *work == "" {
		os.RemoveAll(dir)
	}
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kvhistory:", err)
	os.Exit(2)
}
