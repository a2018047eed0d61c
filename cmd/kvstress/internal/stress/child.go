package stress

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"

	"github.com/logkv/logkv"
)

// ChildMain is the child process of a cycle: it opens the engine and writes
// from several goroutines, reporting each acknowledged write on stdout (see
// "Child protocol" in the package doc), until it is killed or a write fails.
// It returns the process exit code.
func ChildMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvstress -child", flag.ContinueOnError)
	fs.SetOutput(stderr)
	engine := fs.String("engine", "lsm", "engine")
	dir := fs.String("dir", "", "engine directory")
	cycle := fs.Int("cycle", 1, "cycle number (the first part of every version)")
	writers := fs.Int("writers", 4, "writer goroutines")
	keys := fs.Int("keys", 2000, "distinct keys")
	seed := fs.Uint64("seed", 1, "seed of the key order")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || *writers < 1 || *keys < *writers {
		fmt.Fprintln(stderr, "kvstress -child: need -dir, -writers >= 1, -keys >= -writers")
		return 2
	}
	db, err := openEngine(*engine, *dir)
	if err != nil {
		fmt.Fprintf(stderr, "kvstress -child: open: %v\n", err)
		return 1
	}
	var mu sync.Mutex // one write(2) per line
	report := func(line string) error {
		mu.Lock()
		defer mu.Unlock()
		_, err := io.WriteString(stdout, line)
		return err
	}
	if err := report("ready\n"); err != nil {
		return 1
	}
	var wg sync.WaitGroup
	errs := make(chan error, *writers)
	for w := range *writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(*seed, uint64(w)))
			counter := map[int]int{}
			// Writer w owns the keys i with i % writers == w.
			owned := (*keys - w + *writers - 1) / *writers
			for {
				i := w + *writers*rng.IntN(owned)
				k := keyName(i)
				counter[i]++
				v := version{*cycle, counter[i]}
				if err := db.Set([]byte(k), value(k, v), &logkv.WriteOptions{Sync: true}); err != nil {
					errs <- fmt.Errorf("set %s: %w", k, err)
					return
				}
				if err := report(fmt.Sprintf("a %d %d\n", i, v.n)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		fmt.Fprintf(stderr, "kvstress -child: %v\n", err)
	}
	_ = db.Close()
	return 1
}
