package bitcask_test

import (
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/logkv/logkv/bitcask"
)

// Example overwrites keys until the old data files are mostly dead, merges
// them, and reads the live values back after a reopen, which loads the
// keydir from the merge's hint files.
func Example() {
	dir, err := os.MkdirTemp("", "bitcask-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	opts := &bitcask.Options{
		MaxFileSize:      64 << 10, // small files: rotation comes early
		DisableAutoMerge: true,     // merge when the example says so
		Logger:           slog.New(slog.DiscardHandler),
	}
	db, err := bitcask.Open(dir, opts)
	if err != nil {
		log.Fatal(err)
	}
	for round := range 10 {
		for k := range 100 {
			if err := db.Set(fmt.Appendf(nil, "key%03d", k), fmt.Appendf(nil, "round %d %0200d", round, k), nil); err != nil {
				log.Fatal(err)
			}
		}
	}
	merged, err := db.Merge()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("merged:", merged, "rewrote less than it read:", db.MergeStats().BytesOut < db.MergeStats().BytesIn)
	if err := db.Close(); err != nil {
		log.Fatal(err)
	}

	db, err = bitcask.Open(dir, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	v, err := db.Get([]byte("key042"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("key042: %.7s\n", v)
	// Output:
	// merged: true rewrote less than it read: true
	// key042: round 9
}
