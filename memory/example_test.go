package memory_test

import (
	"fmt"
	"log"

	"github.com/logkv/logkv"
	_ "github.com/logkv/logkv/memory" // registers the "memory" engine
)

// Example embeds the memory engine: opened by name (memory.Open("", nil) gives
// the concrete *memory.DB), written key by key and by batch, read, iterated and
// snapshotted.
func Example() {
	e, err := logkv.Open("memory", "", nil) // no directory: nothing is kept across Close
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()

	if err := e.Set([]byte("apple"), []byte("red"), nil); err != nil {
		log.Fatal(err)
	}
	v, err := e.Get([]byte("apple"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("apple=%s\n", v)

	// A snapshot is O(1) to take and sees none of the later writes.
	snap, err := e.NewSnapshot()
	if err != nil {
		log.Fatal(err)
	}
	defer snap.Close()

	// A batch commits atomically, with one sequence number.
	var b logkv.Batch
	b.Set([]byte("banana"), []byte("yellow"))
	b.Set([]byte("cherry"), []byte("dark red"))
	b.Delete([]byte("apple"))
	if err := e.Apply(&b, nil); err != nil {
		log.Fatal(err)
	}
	fmt.Println("last seq:", e.LastSeq())

	it, err := e.NewIter(&logkv.IterOptions{LowerBound: []byte("b")})
	if err != nil {
		log.Fatal(err)
	}
	for k, v := range logkv.All(it) {
		fmt.Printf("%s=%s\n", k, v)
	}
	if err := it.Close(); err != nil {
		log.Fatal(err)
	}

	if _, err := snap.Get([]byte("banana")); err != nil {
		fmt.Println("snapshot at seq", snap.Seq(), "banana:", err)
	}
	v, _ = snap.Get([]byte("apple"))
	fmt.Printf("snapshot apple=%s\n", v)

	// Output:
	// apple=red
	// last seq: 2
	// banana=yellow
	// cherry=dark red
	// snapshot at seq 1 banana: logkv: not found
	// snapshot apple=red
}
