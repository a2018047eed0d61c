//go:build unix

package bench

import (
	"syscall"
	"time"
)

// ProcessCPU returns the CPU time (user and system) the process has used:
// kvbench's CPU per operation, and its benchmarks' (cpu-ns/op), are
// differences of it. On a shared machine the wall time of a short
// operation is mostly waiting for a core; its CPU time is not.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
