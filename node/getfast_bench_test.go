package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
)

// BenchmarkPipelineGets runs pipelines of 16 GETs, redis-benchmark -P 16's
// shape, through the loop's path (the prefetch hint, the parser, run) on
// each engine, with a third of a 1M keyspace written as the issue's
// command leaves it (every third key, "xxx"), and the GETs' keys drawn so
// that a given fraction hits: none, a third (the command), two
// thirds and all. Each case rotates blocks of pipelines in four modes
// (PIPELINE_GETS_ROUNDS rounds, default 5): never hinted, always hinted,
// hinted as serve does (when the client's hintGate is open), and the hint
// alone without the GETs (about what one batched lookup of the keys would
// cost); it reports the thread's CPU time a GET (RUSAGE_THREAD, the
// goroutine locked to its thread) of each mode, the median over the blocks:
//
//	go test -run X -bench PipelineGets -benchtime 1x ./node/
//
// It measures what the hint's walk costs, not what it saves served: with no
// network stack and no other process between pipelines, the keys' lines
// stay in the CPU's caches and the misses the hint overlaps are few. Served
// (compare-redis), the hint pays on hits on every engine, where here it
// does on bitcask only; docs/point-reads.md, session 15, has both.
func BenchmarkPipelineGets(b *testing.B) {
	rounds := 5
	if s := os.Getenv("PIPELINE_GETS_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	const keyspace, pipelines, blockPipelines = 1_000_000, 65536, 16384
	for _, engine := range []string{"memory", "bitcask", "lsm"} {
		b.Run(engine, func(b *testing.B) {
			n, c := pipelineBenchNode(b, engine, keyspace)
			for _, hits := range []int{0, 33, 67, 100} {
				b.Run(fmt.Sprintf("hits=%d%%", hits), func(b *testing.B) {
					rng := rand.New(rand.NewPCG(uint64(hits), 7))
					bufs := make([][]byte, pipelines)
					for i := range bufs {
						var buf []byte
						for range 16 {
							k := rng.IntN(keyspace / 3)
							if rng.IntN(100) < hits {
								k = 3 * k // written
							} else {
								k = 3*k + 1 + rng.IntN(2)
							}
							buf = fmt.Appendf(buf, "*2\r\n$3\r\nGET\r\n$16\r\nkey:%012d\r\n", k)
						}
						bufs[i] = buf
					}
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					var per [4][]float64
					for range b.N {
						for r := range rounds {
							for j := range 4 {
								m := (j + r) % 4 // rotate which mode goes first
								c.hint = hintGate{}
								t0 := pipelineThreadCPU()
								for p := range blockPipelines {
									servePipeline(n, c, bufs[(r*blockPipelines+p)%pipelines], pipelineHintMode(m))
									c.conn.out = c.conn.out[:0]
								}
								per[m] = append(per[m], float64(pipelineThreadCPU()-t0)/(16*blockPipelines))
							}
						}
					}
					b.ReportMetric(pipelineMedian(per[pipelineNoHint]), "nohint-ns/get")
					b.ReportMetric(pipelineMedian(per[pipelineHint]), "hint-ns/get")
					b.ReportMetric(pipelineMedian(per[pipelineGated]), "gated-ns/get")
					b.ReportMetric(pipelineMedian(per[pipelineHintOnly]), "hintonly-ns/get")
					b.ReportMetric(0, "ns/op")
				})
			}
		})
	}
}

// pipelineBenchNode is a node on engine with durability none and every
// third key of keyspace written (key:%012d, "xxx"), and a writer client.
func pipelineBenchNode(b *testing.B, engine string, keyspace int) (*Node, *client) {
	b.Helper()
	n := newBenchNode(b, engine, func(cfg *Config) { cfg.Durability = "none" })
	b.Cleanup(func() { n.Shutdown(context.Background()) })
	c := writerClient(n)
	perm := rand.New(rand.NewPCG(1, 2)).Perm(keyspace / 3)
	runPiped(n, c, len(perm), func(i int) [][]byte {
		return [][]byte{[]byte("SET"), benchKey(3 * perm[i]), []byte("xxx")}
	})
	return n, c
}

// pipelineHintMode is how servePipeline hints a pipeline.
type pipelineHintMode int

const (
	pipelineNoHint   pipelineHintMode = iota // never
	pipelineHint                             // always (the gate held open)
	pipelineGated                            // as serve does: when the gate is open
	pipelineHintOnly                         // the hint alone, no GET run
)

// servePipeline runs buf's complete requests as serve does, hinting them
// as mode says, leaves their replies in c.conn.out and reports whether
// they were hinted.
func servePipeline(n *Node, c *client, buf []byte, mode pipelineHintMode) (hinted bool) {
	switch mode {
	case pipelineHint:
		c.hint = hintGate{}
		hinted = n.prefetchGets(c, buf)
	case pipelineGated:
		hinted = n.prefetchGets(c, buf)
	case pipelineHintOnly:
		c.hint = hintGate{}
		return n.prefetchGets(c, buf)
	}
	for off := 0; ; {
		args, size, _, err := c.parser.parse(buf[off:], c.args, requestLimits)
		c.args = args[:0]
		if err != nil || size == 0 {
			break
		}
		off += size
		n.run(c, lookup(args[0]), args)
	}
	c.hint.note(c.hits, c.misses)
	n.publishTally(c)
	return hinted
}

// pipelineThreadCPU is the calling thread's user and system CPU time, ns.
func pipelineThreadCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// pipelineMedian is the median of xs (which it sorts).
func pipelineMedian(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}
