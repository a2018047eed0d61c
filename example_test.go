package logkv_test

import (
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/logkv/logkv"
	_ "github.com/logkv/logkv/bitcask" // registers "bitcask"
	_ "github.com/logkv/logkv/lsm"     // registers "lsm"
	_ "github.com/logkv/logkv/memory"  // registers "memory"
)

// Example opens an engine by name, writes with and without a batch, reads,
// iterates within bounds, and reopens it to find the writes again. Any
// registered engine name works the same way.
func Example() {
	dir, err := os.MkdirTemp("", "logkv-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := logkv.Open("lsm", dir, nil) // nil options: the engine's defaults
	if err != nil {
		log.Fatal(err)
	}
	// Sync: durable before Set returns, through a crash or a power loss.
	if err := db.Set([]byte("greeting"), []byte("hello"), &logkv.WriteOptions{Sync: true}); err != nil {
		log.Fatal(err)
	}
	var b logkv.Batch // atomic: readers and recovery see all of it or none
	b.Set([]byte("a/1"), []byte("one"))
	b.Set([]byte("a/2"), []byte("two"))
	b.Delete([]byte("greeting"))
	if err := db.Apply(&b, nil); err != nil {
		log.Fatal(err)
	}
	if err := db.Close(); err != nil { // Close makes every write durable
		log.Fatal(err)
	}

	db, err = logkv.Open("lsm", dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	_, err = db.Get([]byte("greeting"))
	fmt.Println("greeting:", err, errors.Is(err, logkv.ErrNotFound))
	it, err := db.NewIter(&logkv.IterOptions{LowerBound: []byte("a/"), UpperBound: []byte("a0")})
	if err != nil {
		log.Fatal(err)
	}
	for k, v := range logkv.All(it) {
		fmt.Printf("%s=%s\n", k, v)
	}
	if err := it.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("last seq:", db.LastSeq())
	// Output:
	// greeting: logkv: not found true
	// a/1=one
	// a/2=two
	// last seq: 2
}

// ExampleNewOptions asks engines what they can do, as a server does before
// opening one: the decisions name no engine (a server would range over
// logkv.Engines(), or take the name from its configuration).
func ExampleNewOptions() {
	for _, name := range []string{"bitcask", "lsm", "memory"} {
		opts, err := logkv.NewOptions(name)
		if err != nil {
			log.Fatal(err)
		}
		if opts == nil {
			continue // registered without an options type: it can do nothing extra
		}
		_, externalWAL := opts.(logkv.ExternalWAL)
		v, ok := opts.(logkv.Volatile)
		volatile := ok && v.Volatile()
		fmt.Printf("%s: options %T, can use the caller's log as its WAL: %v, needs checkpoints: %v\n", name, opts, externalWAL, volatile)
	}
	// Output:
	// bitcask: options *bitcask.Options, can use the caller's log as its WAL: false, needs checkpoints: false
	// lsm: options *lsm.Options, can use the caller's log as its WAL: true, needs checkpoints: false
	// memory: options *memory.Options, can use the caller's log as its WAL: false, needs checkpoints: true
}
