package bench

import "fmt"

// Plot draws results in file (.svg or .png).
func Plot(file string, results []Result) error {
	return fmt.Errorf("%w: -plot is not built yet", ErrUsage)
}
