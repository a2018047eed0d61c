package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Result is the outcome of one benchmark (or of one operation type of a YCSB
// workload) on one engine in one round. It is also the JSON Lines record
// kvbench -json prints.
type Result struct {
	// Kind is "result" (one benchmark or operation) or "summary" (the median
	// over rounds, with its ratio to the first engine).
	Kind      string `json:"kind"`
	Engine    string `json:"engine"`
	Benchmark string `json:"benchmark"`
	// Op is the operation type: "all" for a db_bench benchmark and for a YCSB
	// workload's total; read, update, insert, scan, rmw for its parts.
	Op    string `json:"op"`
	Round int    `json:"round"`

	Ops       int64   `json:"ops"`
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	MBPerSec  float64 `json:"mb_per_sec"`
	Latency

	// Found and NotFound count the keys reads looked for; BadValues counts
	// values that were not the ones written (not byte for byte the key's value) and
	// keys out of order in scans. Errors is the number of verification
	// failures (misses where the key must exist, plus BadValues).
	Found     int64 `json:"found"`
	NotFound  int64 `json:"not_found"`
	BadValues int64 `json:"bad_values"`
	Errors    int64 `json:"errors"`

	// CPUSeconds is the CPU time the whole process used during the
	// benchmark (user and system, every goroutine: the engine's background
	// work included), on the "all" result. On a shared machine it is steadier
	// than the wall time: waiting for a core does not count.
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`

	// Ratio is OpsPerSec relative to the first engine's (summary), or, for
	// replicate-write, to unreplicated-write's.
	Ratio float64 `json:"ratio,omitempty"`

	// Replication benchmarks only: the number of followers, the offered
	// rate (replicate-lag), the lag samples behind the percentiles, how the
	// follower caught up (replicate-catchup), and a human note with the
	// target.
	Followers int    `json:"followers,omitempty"`
	Rate      int    `json:"rate,omitempty"`
	Samples   int64  `json:"samples,omitempty"`
	CatchUp   string `json:"catchup,omitempty"`
	Note      string `json:"note,omitempty"`

	Params
}

// Params are the run parameters repeated in every JSON record.
type Params struct {
	Num          int     `json:"num"`
	KeySize      int     `json:"key_size"`
	ValueSize    int     `json:"value_size"`
	Threads      int     `json:"threads"`
	Batch        int     `json:"batch"`
	Sync         bool    `json:"sync"`
	Seed         uint64  `json:"seed"`
	Compress     float64 `json:"compressibility"`
	Distribution string  `json:"distribution,omitempty"`
	Records      int64   `json:"records,omitempty"`
}

// writeJSON prints r as one JSON line.
func writeJSON(w io.Writer, r Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// writeText prints r as one db_bench-like line.
func writeText(w io.Writer, r Result) error {
	name := r.Benchmark
	if r.Op != "all" {
		name += "/" + r.Op
	}
	var notes []string
	if r.Found+r.NotFound > 0 {
		notes = append(notes, fmt.Sprintf("%d of %d found", r.Found, r.Found+r.NotFound))
	}
	if r.Errors > 0 {
		notes = append(notes, fmt.Sprintf("%d ERRORS", r.Errors))
	}
	if r.Note != "" {
		notes = append(notes, r.Note)
	}
	note := ""
	if len(notes) > 0 {
		note = " (" + strings.Join(notes, ", ") + ")"
	}
	_, err := fmt.Fprintf(w, "%-8s %-18s %10.0f ops/s %7.1f MB/s  p50 %7.2f p95 %7.2f p99 %8.2f p99.9 %9.2f max %10.1f us %9d ops %6.2fs%s\n",
		r.Engine, name, r.OpsPerSec, r.MBPerSec, r.P50, r.P95, r.P99, r.P999, r.Max, r.Ops, r.Seconds, note)
	return err
}

// opRank orders operation types in output.
var opRank = map[string]int{"all": 0, "read": 1, "update": 2, "insert": 3, "scan": 4, "rmw": 5}

func sortedOps[V any](m map[string]V) []string {
	ops := make([]string, 0, len(m))
	for op := range m {
		ops = append(ops, op)
	}
	slices.SortFunc(ops, func(a, b string) int {
		ra, oka := opRank[a]
		rb, okb := opRank[b]
		switch {
		case oka && okb:
			return ra - rb
		case oka:
			return -1
		case okb:
			return 1
		}
		return strings.Compare(a, b)
	})
	return ops
}
