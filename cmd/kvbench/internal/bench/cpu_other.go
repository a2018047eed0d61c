//go:build !unix

package bench

import "time"

// processCPU returns 0 where the process's CPU time is not known.
func processCPU() time.Duration { return 0 }
