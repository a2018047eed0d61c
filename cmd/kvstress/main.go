// Command kvstress is a crash harness: it kills a process writing to an
// engine with SIGKILL at random moments, reopens the engine and checks that
// no acknowledged write was lost. The logic lives in internal/stress.
//
//	kvstress -engine lsm -cycles 50 [-dir DIR] [-seconds-per-cycle 1]
//	    [-node [-kvnode PATH] [-replicated] [-appendfsync always|everysec]
//	     [-multi [-tx-keys 8]] [-powercut]]
//
// -node kills a kvnode, whose commit log is the only log of an lsm engine
// (and, with checkpoints, what a memory engine restarts from); -replicated
// runs it as a replication leader without followers. With -appendfsync
// everysec its writes are acknowledged before their fsync and must still all
// survive SIGKILL. -engine memory works with -node. -multi writes MULTI/EXEC
// transactions instead and checks each is wholly present or wholly absent
// after every kill (every acknowledged one present), and that keys set with
// PX keep their deadlines across restarts and are gone once those passed.
// -powercut serves kvnode's data directory through a FUSE file system that
// keeps only what was fsynced (internal/stress/powercut) and cuts its power
// at each kill: with appendfsync always nothing acknowledged may be lost;
// with everysec only writes acknowledged within stress.EverysecWindow of
// the cut, counted as dropped.
//
// Its last line is the scorecard,
//
//	cycles=N acked=N verified=N lost=0 corrupt=0 recovery_p99=...
//	    [powercut dropped=N max_dropped_age=... cut_files=N cut_bytes=N]
//
// and it exits 1 if anything was lost or corrupt, 2 on a usage or harness
// error.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/logkv/logkv/cmd/kvstress/internal/stress"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) > 0 && (args[0] == "-child" || args[0] == "--child") {
		return stress.ChildMain(args[1:], os.Stdout, os.Stderr)
	}
	fs := flag.NewFlagSet("kvstress", flag.ContinueOnError)
	engine := fs.String("engine", "lsm", "engine: lsm or bitcask (or memory, with -node)")
	cycles := fs.Int("cycles", 10, "kill-and-recover cycles")
	dir := fs.String("dir", "", "engine `dir` (default: a new temporary directory, removed after a clean run)")
	secs := fs.Float64("seconds-per-cycle", 1, "longest a cycle writes before its kill")
	writers := fs.Int("writers", 4, "concurrent writers")
	keys := fs.Int("keys", 2000, "distinct keys")
	seed := fs.Uint64("seed", 0, "seed of kill times and keys (0: random; logged)")
	node := fs.Bool("node", false, "kill and restart a kvnode process instead, writing over Redis")
	kvnode := fs.String("kvnode", "", "kvnode `binary` for -node (default: go build ./cmd/kvnode into a temporary dir)")
	replicated := fs.Bool("replicated", false, "with -node: run kvnode as a replication leader (certificates, commit log)")
	appendFsync := fs.String("appendfsync", "", "with -node: kvnode's appendfsync, always or everysec")
	multi := fs.Bool("multi", false, "with -node: MULTI/EXEC transactions and SET PX/PERSIST, checked all-or-nothing and for deadlines after each kill")
	txKeys := fs.Int("tx-keys", 8, "with -multi: fresh keys per transaction")
	powerCut := fs.Bool("powercut", false, "with -node: serve kvnode's data directory through a FUSE file system that loses every write not fsynced, and cut its power at each kill (needs /dev/fuse, and root or fusermount)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "kvstress: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	check := stress.Config{Engine: *engine, Node: *node, Replicated: *replicated, AppendFsync: *appendFsync, Multi: *multi, TxKeys: *txKeys, PowerCut: *powerCut}
	if err := check.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "kvstress:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	d, cleanup := *dir, func() {}
	if d == "" {
		tmp, err := os.MkdirTemp("", "kvstress-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "kvstress:", err)
			return 2
		}
		d, cleanup = tmp, func() { os.RemoveAll(tmp) }
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvstress:", err)
		return 2
	}
	bin := *kvnode
	if *node && bin == "" {
		tmp, err := os.MkdirTemp("", "kvstress-kvnode-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "kvstress:", err)
			return 2
		}
		defer os.RemoveAll(tmp)
		bin = filepath.Join(tmp, "kvnode")
		build := exec.Command("go", "build", "-o", bin, "github.com/logkv/logkv/cmd/kvnode")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "kvstress: go build kvnode:", err)
			return 2
		}
	}
	sc, err := stress.Run(ctx, stress.Config{
		Engine: *engine, Dir: d, Cycles: *cycles,
		CycleDuration: time.Duration(*secs * float64(time.Second)),
		Writers:       *writers, Keys: *keys, Seed: *seed,
		Node: *node, KVNode: bin, Replicated: *replicated, AppendFsync: *appendFsync, Log: os.Stderr,
		Multi: *multi, TxKeys: *txKeys, PowerCut: *powerCut,
		ChildCommand: func(args []string) *exec.Cmd {
			cmd := exec.Command(self, append([]string{"-child"}, args...)...)
			cmd.Stderr = os.Stderr
			return cmd
		},
	})
	fmt.Println(sc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvstress:", err)
		fmt.Fprintln(os.Stderr, "kvstress: directory kept:", d)
		return 2
	}
	if !sc.OK() {
		fmt.Fprintln(os.Stderr, "kvstress: LOST OR CORRUPT WRITES; directory kept:", d)
		return 1
	}
	cleanup()
	return 0
}
