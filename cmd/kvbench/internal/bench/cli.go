package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
)

// Main is the kvbench command: it parses args (without the program name),
// runs, and returns the exit status: 0, 1 on an error or a failed
// verification, 2 on bad usage. cmd/kvbench and the kvbench of
// cmd/kvbench/peers (the same command with the peer engines registered) are
// both this function.
func Main(args []string, stdout, stderr io.Writer) int {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("kvbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kvbench: unexpected arguments %q: every setting is a flag (kvbench -h lists them)\n", fs.Args())
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := Run(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, err)
		if errors.Is(err, ErrUsage) {
			return 2
		}
		return 1
	}
	return 0
}
