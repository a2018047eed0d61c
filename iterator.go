package logkv

import "iter"

// Iterator walks keys in byte-wise order within its bounds. Positioning
// methods return whether the iterator is now at a key (the same as Valid).
// Key and Value are valid only until the next move or Close; copy them to keep
// them. Direction may change at any time: Next after Prev, Prev after Next. An
// Iterator belongs to one goroutine at a time. After an error every
// positioning method returns false and Error reports it.
type Iterator interface {
	// First moves to the smallest key within bounds.
	First() bool
	// Last moves to the largest key within bounds.
	Last() bool
	// SeekGE moves to the smallest key >= key (and within bounds).
	SeekGE(key []byte) bool
	// SeekLT moves to the largest key < key (and within bounds).
	SeekLT(key []byte) bool
	// Next moves to the next key. On an iterator that is not positioned it
	// returns false.
	Next() bool
	// Prev moves to the previous key. On an iterator that is not positioned it
	// returns false.
	Prev() bool
	// Valid reports whether the iterator is at a key.
	Valid() bool
	// Key returns the current key. Only call it when Valid.
	Key() []byte
	// Value returns the current value. Only call it when Valid.
	Value() []byte
	// Error returns the first error the iterator met, if any.
	Error() error
	// Close releases the iterator and returns Error's result. Calling it twice
	// is safe; after Close, positioning methods return false.
	Close() error
}

// All returns a range-over-func sequence of it's keys and values, from First
// to the end of its bounds. As with the Iterator itself, the yielded slices
// are valid only during that step. The caller still owns it: check it.Error()
// after the loop and close it.
//
//	it, err := e.NewIter(nil)
//	...
//	for k, v := range logkv.All(it) {
//		fmt.Printf("%s=%s\n", k, v)
//	}
//	if err := it.Close(); err != nil { ... }
func All(it Iterator) iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for ok := it.First(); ok; ok = it.Next() {
			if !yield(it.Key(), it.Value()) {
				return
			}
		}
	}
}
