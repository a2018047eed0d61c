#!/usr/bin/env bash
# Regenerates docs/benchmarks.md and its charts: one kvbench run over logkv's
# engines, its peers and the noop engine (kvbench's own cost), a short run of
# bbolt's production setting, and the machine it ran on. `make benchmarks-doc`
# runs it from the repository root; NUM and ROUNDS size the main run.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
peers="$root/cmd/kvbench/peers"
NUM=${NUM:-20000}
ROUNDS=${ROUNDS:-2}
ENGINES=${ENGINES:-lsm,bitcask,memory,pebble,badger,bbolt-nosync,goleveldb,btree,noop}
BENCHMARKS=${BENCHMARKS:-fillseq,fillrandom,overwrite,readrandom,readseq,readreverse,seekrandom,deleterandom,fillsync,ycsb-a,ycsb-b,ycsb-c,ycsb-d,ycsb-e,ycsb-f}
BOLT_NUM=${BOLT_NUM:-5000}
# The overhead table comes from a run of its own, larger than the main one:
# at NUM keys a benchmark lasts milliseconds, and its fixed costs (starting
# workers, the progress ticker) would be charged to each operation.
# By default every engine is in it, since the target is set against the
# fastest of them on each benchmark; QUICK=1 (below) runs only those that
# were the fastest somewhere, and OVERHEAD_ENGINES, when set, is used as
# given either way (make bench-overhead reports the same table as a Go
# benchmark).
OVERHEAD_NUM=${OVERHEAD_NUM:-200000}
OVERHEAD_ROUNDS=${OVERHEAD_ROUNDS:-2}
# Scans repeated, as BenchmarkOverhead's: one scan of 200000 keys lasts a
# millisecond on noop, too short to time on a shared machine.
OVERHEAD_SCAN_PASSES=${OVERHEAD_SCAN_PASSES:-10}
# fillsync's writes, as BenchmarkOverhead's -overhead.sync_num: at
# kvbench's default (num/100, 2000) noop's fillsync lasts tens of
# microseconds, and a benchmark's fixed start-up costs swamp its figure.
OVERHEAD_SYNC_NUM=${OVERHEAD_SYNC_NUM:-20000}
# QUICK=1 is the shorter setting: the overhead run over noop and only the
# engines that were the fastest on some benchmark in the full runs of
# 2026-12-06 (11:52 and 23:04 UTC)
# (bitcask, memory, bbolt-nosync, btree), not the disk engines, which are
# most of its time. At the defaults, from a fresh clone on the shared
# 2-core machine (load 13-27), `make benchmarks-doc` took 54 minutes on
# 2026-12-06 (the build 8, the main run 1.5, bbolt's 0.7, the overhead run
# 44), 8.6 minutes of CPU: most of the wall time is waiting for a core and
# for fsyncs. QUICK=1 right after, from the same clone (the build cached),
# at load 20-44: 25 minutes, 3.4 of CPU. On a quiet machine both are
# shorter by much; neither was timed there.
overhead_default=noop,lsm,bitcask,memory,pebble,badger,bbolt-nosync,goleveldb,btree
if [ "${QUICK:-0}" = 1 ]; then
  overhead_default=noop,bitcask,memory,bbolt-nosync,btree
fi
OVERHEAD_ENGINES=${OVERHEAD_ENGINES:-$overhead_default}
out="$root/docs/benchmarks.md"
mkdir -p "$root/docs"

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
# Build against a copy of the peers' go.mod that the go command may update:
# when logkv's own requirements moved on (the replace points at this
# checkout), the build still resolves, and the checkout is left untouched.
cp "$peers/go.mod" "$bin/go.mod"
cp "$peers/go.sum" "$bin/go.sum"
export GOFLAGS="-mod=mod -modfile=$bin/go.mod"
(cd "$peers" && go build -o "$bin/kvbench" .)

started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
main_cmd="kvbench -engine $ENGINES -num $NUM -rounds $ROUNDS -benchmarks $BENCHMARKS -plot docs/benchmarks.svg"
"$bin/kvbench" -engine "$ENGINES" -num "$NUM" -rounds "$ROUNDS" -benchmarks "$BENCHMARKS" \
  -progress never -plot "$root/docs/benchmarks.svg" >"$bin/main.txt"
bolt_cmd="kvbench -engine bbolt,bbolt-nosync -num $BOLT_NUM -benchmarks fillseq,fillrandom,overwrite,readrandom,fillsync"
"$bin/kvbench" -engine bbolt,bbolt-nosync -num "$BOLT_NUM" -benchmarks fillseq,fillrandom,overwrite,readrandom,fillsync \
  -progress never >"$bin/bolt.txt"
overhead_cmd="kvbench -engine $OVERHEAD_ENGINES -num $OVERHEAD_NUM -sync_num $OVERHEAD_SYNC_NUM -rounds $OVERHEAD_ROUNDS -scan_passes $OVERHEAD_SCAN_PASSES -benchmarks $BENCHMARKS"
"$bin/kvbench" -engine "$OVERHEAD_ENGINES" -num "$OVERHEAD_NUM" -sync_num "$OVERHEAD_SYNC_NUM" -rounds "$OVERHEAD_ROUNDS" -scan_passes "$OVERHEAD_SCAN_PASSES" -benchmarks "$BENCHMARKS" \
  -progress never >"$bin/overhead.txt"
finished=$(date -u '+%Y-%m-%d %H:%M UTC')
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
fs=$(df -T "${TMPDIR:-/tmp}" | awk 'NR==2 {print $2}')
pebble=$(cd "$peers" && go list -m -f '{{.Version}}' github.com/cockroachdb/pebble/v2)
badger=$(cd "$peers" && go list -m -f '{{.Version}}' github.com/dgraph-io/badger/v4)
bbolt=$(cd "$peers" && go list -m -f '{{.Version}}' go.etcd.io/bbolt)
goleveldb=$(cd "$peers" && go list -m -f '{{.Version}}' github.com/syndtr/goleveldb)
btree=$(cd "$peers" && go list -m -f '{{.Version}}' github.com/tidwall/btree)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)

# section prints the block of the run's output that starts with $1, up to
# the next empty line.
section() { awk -v h="$1" 'index($0, h) == 1 {on = 1} on && $0 == "" {exit} on {print}' "${2:-$bin/main.txt}"; }

{
cat <<DOC
# logkv against the engines people would pick instead

Generated by \`make benchmarks-doc\` (\`cmd/kvbench/peers/benchmarks-doc.sh\`);
do not edit by hand. Every figure below comes from the one run it describes.

- **When**: $started to $finished, logkv at commit $commit.
- **Machine**: $(nproc) cores ($cpu), $mem of memory, Linux $(uname -r),
  databases on $fs under \`${TMPDIR:-/tmp}\`, $(go version | cut -d' ' -f3).
  The load average was $load_before before the run and $load_after after it
  (on $(nproc) cores: above $(nproc), other work competed with the run for
  them). Absolute figures move with the load and the machine; compare
  the ratios of one run, never absolute figures across runs. Rounds
  alternate the engine order (ABC, CBA) so drift favours no engine, and the
  tables give the median of the rounds.
- **Peers**: Pebble $pebble, Badger $badger, bbolt $bbolt, goleveldb
  $goleveldb, tidwall/btree $btree, each configured as
  [cmd/kvbench/README.md](../cmd/kvbench/README.md#peer-engines) states
  (Pebble and goleveldb with 10-bit bloom filters and lsm's 64 MiB block
  cache; Badger with its defaults and that cache; bbolt as etcd runs it).
  \`noop\` stores nothing: its line is kvbench's own cost.
- **Workload**: 16-byte keys, 100-byte random values (compressibility 1),
  one thread, one write per batch; fillsync writes num/100 keys with
  \`WriteOptions{Sync: true}\` (an fsync per write on every engine). Every
  read is verified (right key, right value; a scan's timed loop only moves
  the iterator and sums key and value lengths, and a pass after its timer
  compares every key and value); a run with a mismatch fails.

## How to run it

From a fresh clone, with only Go (the peers' modules come from the Go
module proxy):

\`\`\`sh
make benchmarks-doc                                   # this page, NUM=$NUM ROUNDS=$ROUNDS
cd cmd/kvbench/peers && go run . -engine lsm,pebble,badger,bbolt,goleveldb,btree -num 100000
\`\`\`

The main run was \`$main_cmd\`.

## Throughput and latency

![throughput and latency per engine and benchmark](benchmarks.svg)

Median ops/s over the rounds and the ratio to lsm (1.00x is lsm; above is
faster). The noop column is the driver alone (see below).

\`\`\`
DOC
section "median ops/s"
cat <<DOC
\`\`\`

Per result, with latency percentiles in microseconds (one operation in 16
timed, at random, and one scan step in 256; \`-latency_every 1\` times all):

\`\`\`
DOC
grep -E '^[a-z-]+ +(fill|overwrite|read|seek|delete|ycsb)' "$bin/main.txt" | grep -Ev '^(noop|kvbench) ' | cut -c1-150
cat <<DOC
\`\`\`

## kvbench's own cost

The noop engine runs the same driver loop (keys, values, verification,
timing, recording) over a store that keeps nothing; its time per operation
is an upper bound of what kvbench adds to every engine's figure (it includes
the noop store's own work: parsing the key, slicing the value it answers
with; on scans it counts the steps through keys it holds rather than making
them, and makes only the key and value a scan stops at, so a step costs
the driver's call and tally). The share is that time over the
fastest engine's time per operation on the same benchmark in the same run,
by wall time and by the process's CPU time. On this machine the wall time
of a sub-microsecond operation is mostly waiting for a core (a load average of
about 20 on 2 cores), so the CPU columns are the ones to read. The table
comes from a run of its own with $OVERHEAD_NUM keys ($OVERHEAD_SYNC_NUM for
fillsync) and the engines $OVERHEAD_ENGINES,
\`$overhead_cmd\` (in the main run a benchmark lasts milliseconds, and its
fixed costs would be spread over too few operations); \`make
bench-overhead\` measures the same as a Go benchmark (one sub-benchmark per
benchmark, named for the fastest engine):

\`\`\`
DOC
section "kvbench overhead" "$bin/overhead.txt"
cat <<DOC
\`\`\`

The target is under 5% of the fastest engine on every benchmark; the table
says where it holds and where it does not. Keys (and YCSB's operation
types and zipfian draws) are drawn and formatted per thread before the
timer starts, values are windows of one random pool chosen by key number
(never copied), and a read is verified by comparing it with the window it
must equal; [cmd/kvbench/README.md](../cmd/kvbench/README.md#kvbenchs-own-cost)
says what is left per operation and why. Each figure includes every
engine's driver cost equally, so ratios between engines are compressed
towards 1 by at most that share, never reordered.

## bbolt as it runs in production

bbolt has no write that is not durable short of \`NoSync\`, which its
documentation reserves for bulk loads (a power loss can then corrupt the
file), so \`bbolt\`, with etcd's production options, fsyncs every write
whatever \`WriteOptions.Sync\` says. Its write figures are an fsync each;
the main run uses \`bbolt-nosync\` (NoSync for writes without Sync) so its
figures measure the B+tree, not the disk. Both, \`$bolt_cmd\`:

\`\`\`
DOC
sed -n '/median ops/,$p' "$bin/bolt.txt"
cat <<DOC
\`\`\`

## RocksDB

Not driven in-process: the Go bindings need cgo and a librocksdb of the
exact version they were written for, which a fresh clone with only Go does
not have. \`make bench-rocksdb\` runs Debian's \`db_bench\` (package
\`rocksdb-tools\`, RocksDB 7.8.3) with kvbench's sizes and lsm's budget;
its keys are binary, not decimal, and its fillrandom draws keys with
replacement, so compare it by ratio to a kvbench run of the same size,
not line by line.
DOC
} >"$out"
echo "wrote $out and docs/benchmarks.svg"
