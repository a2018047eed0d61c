package bench

import (
	"context"
	"fmt"
)

// Request distributions of the YCSB workloads.
const (
	DistZipfian = "zipfian"
	DistUniform = "uniform"
	DistLatest  = "latest"
)

type ycsbState struct{}

func (s *session) runYCSB(ctx context.Context, b *benchRun) ([]Result, error) {
	return nil, fmt.Errorf("%w: %s: YCSB workloads are not built yet", ErrUsage, b.name)
}
