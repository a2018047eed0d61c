package lsm_test

import (
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm"
)

// Example opens an lsm DB with small memtables, so that a few thousand
// writes flush to tables and compact, and reads them back after a reopen.
func Example() {
	dir, err := os.MkdirTemp("", "lsm-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	opts := &lsm.Options{
		MemtableSize: 64 << 10, // the smallest: flushes come early
		Compression:  "zstd",
		Logger:       slog.New(slog.DiscardHandler), // recovery's reports, silenced for the example
	}
	db, err := lsm.Open(dir, opts)
	if err != nil {
		log.Fatal(err)
	}
	for i := range 5000 {
		key := fmt.Appendf(nil, "user/%05d", i)
		if err := db.Set(key, fmt.Appendf(nil, "value %d, padded to flush sooner: %0100d", i, i), nil); err != nil {
			log.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		log.Fatal(err)
	}

	db, err = lsm.Open(dir, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	m := db.Metrics()
	fmt.Println("tables on disk:", m.DiskBytes > 0)
	it, err := db.NewIter(&logkv.IterOptions{LowerBound: []byte("user/04998")})
	if err != nil {
		log.Fatal(err)
	}
	for k, v := range logkv.All(it) {
		fmt.Printf("%s: %.11s\n", k, v)
	}
	if err := it.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("last seq:", db.LastSeq())
	// Output:
	// tables on disk: true
	// user/04998: value 4998,
	// user/04999: value 4999,
	// last seq: 5000
}
