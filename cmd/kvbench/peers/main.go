// Command peers is kvbench with the engines people would pick instead of
// logkv registered beside logkv's own: Pebble, Badger, bbolt, goleveldb and a
// B-tree map, each configured as a careful user would (cmd/kvbench/README.md
// states every setting). It runs every db_bench benchmark and YCSB workload
// on them through the same driver as logkv's engines (cmd/kvbench/internal/bench: same
// keys, values, verification, HDR latencies, alternating rounds, ratio
// tables, JSON Lines and charts):
//
//	cd cmd/kvbench/peers && go run . -engine lsm,pebble,badger,bbolt,goleveldb,btree -num 100000
//
// It is its own module so that the peers' dependencies stay out of logkv's
// go.mod; a replace directive points it at the checkout it sits in.
package main

import (
	"os"

	_ "github.com/logkv/logkv/bitcask"
	"github.com/logkv/logkv/cmd/kvbench/internal/bench"
	_ "github.com/logkv/logkv/lsm"
	_ "github.com/logkv/logkv/memory"
)

func main() {
	os.Exit(bench.Main(os.Args[1:], os.Stdout, os.Stderr))
}
