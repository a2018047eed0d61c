// Command kvbench measures logkv engines: db_bench-style benchmarks and the
// YCSB core workloads, over any registered engine. See cmd/kvbench/README.md.
// The same command with Pebble, Badger, bbolt, goleveldb and a B-tree beside
// logkv's engines is the module in cmd/kvbench/peers.
//
//	kvbench -engine memory -benchmarks fillrandom,readrandom -num 1000000
package main

import (
	"os"

	"github.com/logkv/logkv/cmd/kvbench/internal/bench"
)

func main() {
	os.Exit(bench.Main(os.Args[1:], os.Stdout, os.Stderr))
}
