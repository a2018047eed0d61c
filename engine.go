package logkv

import (
	"fmt"
	"slices"
	"sync"
)

// Reader reads a consistent view of keys: an engine's latest state, or a
// snapshot's frozen one.
type Reader interface {
	// Get returns the value stored under key, or ErrNotFound. The returned
	// slice belongs to the caller.
	Get(key []byte) ([]byte, error)

	// NewIter returns an iterator over the keys in [o.LowerBound, o.UpperBound)
	// in byte-wise order; nil options mean all keys. An iterator over an engine
	// sees the state as of its creation: writes made after NewIter returns do
	// not show through it. The iterator must be closed.
	NewIter(o *IterOptions) (Iterator, error)
}

// Writer changes keys. Each call commits one batch with one sequence number.
type Writer interface {
	// Set stores value under key, replacing any earlier value.
	Set(key, value []byte, o *WriteOptions) error

	// Delete removes key. Deleting an absent key is not an error.
	Delete(key []byte, o *WriteOptions) error

	// Apply commits b atomically: readers see all of it or none, and so does
	// recovery after a crash. Within b, a later operation on a key overrides an
	// earlier one. b may be reused once Apply returns. An empty batch commits
	// nothing and consumes no sequence number (a non-zero o.Seq is still
	// checked). A batch holding an invalid operation (see Batch.Err) is
	// rejected whole.
	Apply(b *Batch, o *WriteOptions) error
}

// Engine is a storage engine: a Reader and a Writer over one directory (or
// none, for an in-memory engine), plus snapshots, sequence numbers, metrics
// and lifecycle. All methods are safe for concurrent use. After Close, every
// method returns ErrClosed (LastSeq and Metrics keep answering with their last
// values); Close itself is safe to call twice.
type Engine interface {
	Reader
	Writer

	// NewSnapshot returns a frozen view of the engine as of now. Writes made
	// afterwards never show through it. It must be closed; an engine may keep
	// obsolete data alive while a snapshot needs it.
	NewSnapshot() (Snapshot, error)

	// LastSeq returns the sequence number of the newest committed batch (0 for
	// an empty engine). After a reopen it is the newest recovered.
	LastSeq() uint64

	// Sync makes every write committed so far durable.
	Sync() error

	// Metrics returns the engine's counters and gauges.
	Metrics() Metrics

	// Close releases the engine's resources, first making every committed
	// write durable where the engine is durable. Iterators and snapshots still
	// open become invalid.
	Close() error
}

// Snapshot is a frozen, consistent view of an engine. It belongs to one
// goroutine at a time.
type Snapshot interface {
	Reader

	// Seq returns the sequence number of the newest batch the snapshot sees.
	Seq() uint64

	// Close releases the snapshot. Calling it twice is safe.
	Close() error
}

// OpenFunc opens an engine in dir. opts is nil (defaults) or the engine's own
// *Options; any other type is an error.
type OpenFunc func(dir string, opts any) (Engine, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]driver{}
)

// driver is what the registry keeps of an engine.
type driver struct {
	open OpenFunc
	// newOptions returns a new zero *Options of the engine; nil for an
	// engine registered by Register, which has no options type.
	newOptions func() any
}

// Register makes an engine available to Open under name. Engine packages call
// it from init. It panics if name is empty, open is nil, or name is already
// registered, as database/sql.Register does. An engine with an options type
// registers with RegisterTyped instead, so that NewOptions can make its
// options and callers can ask them what the engine can do.
func Register(name string, open OpenFunc) { register(name, driver{open: open}) }

func register(name string, d driver) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if name == "" || d.open == nil {
		panic("logkv: Register with an empty name or nil OpenFunc")
	}
	if _, dup := registry[name]; dup {
		panic("logkv: Register called twice for engine " + name)
	}
	registry[name] = d
}

// Engines returns the names of the registered engines, sorted.
func Engines() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func lookup(name string) (driver, error) {
	registryMu.RLock()
	d, ok := registry[name]
	registryMu.RUnlock()
	if !ok {
		return driver{}, fmt.Errorf("logkv: unknown engine %q (registered: %v); import its package, e.g. _ \"github.com/logkv/logkv/%s\"", name, Engines(), name)
	}
	return d, nil
}

// Open opens the engine registered under name in dir with opts (nil for
// defaults, or that engine's *Options). The engine's package must be imported
// for its side effect of registering it.
func Open(name, dir string, opts any) (Engine, error) {
	d, err := lookup(name)
	if err != nil {
		return nil, err
	}
	return d.open(dir, opts)
}

// NewOptions returns a new *Options of the engine registered under name, with
// every field zero: the engine's defaults, which its Open fills in. It is
// for callers that fill options before Open without naming the engine's
// package: decoding them from a configuration file, or asking what the
// engine can do (the capability interfaces, such as ExternalWAL and
// Volatile) and adjusting them. It returns nil for an engine registered with
// Register, which takes no options, and an error for an unknown name.
func NewOptions(name string) (any, error) {
	d, err := lookup(name)
	if err != nil {
		return nil, err
	}
	if d.newOptions == nil {
		return nil, nil
	}
	return d.newOptions(), nil
}

// RegisterTyped registers an engine whose open function takes its own
// options type, as every engine package's Open does. The registered OpenFunc
// passes nil or an *O through and refuses options of any other type with an
// error naming both types; NewOptions(name) returns a new(O). It panics as
// Register does.
func RegisterTyped[O any, E Engine](name string, open func(dir string, o *O) (E, error)) {
	openAny := func(dir string, opts any) (Engine, error) {
		var o *O
		switch v := opts.(type) {
		case nil:
		case *O:
			o = v
		default:
			return nil, fmt.Errorf("logkv: engine %s takes nil or %T options, not %T", name, o, opts)
		}
		e, err := open(dir, o)
		if err != nil {
			// Not e: a nil *DB in an Engine interface is not a nil Engine.
			return nil, err
		}
		return e, nil
	}
	register(name, driver{open: openAny, newOptions: func() any { return new(O) }})
}

// Prefetcher is an optional interface of an Engine: a hint that Gets of
// keys are about to come, one after another, as a pipeline of GETs makes
// them. Prefetch brings what those Gets will read (index nodes, records)
// into the CPU's caches, the memory accesses of the different keys
// overlapped, so that each Get then finds its lines there instead of
// waiting for its cache misses in turn. It returns nothing, copies nothing
// out and changes nothing any read, write or metric can see: calling it or
// not, with any keys (absent, invalid, repeated, too many: an engine may
// look at only the first few), at any time (concurrently with writes,
// merges or compactions, or after Close), changes no result. It is not a
// Get: Metrics' Gets does not count it. Use Prefetch below, which does
// nothing for an engine without it.
type Prefetcher interface {
	// Prefetch hints that Gets of keys follow. It keeps none of keys.
	Prefetch(keys [][]byte)
}

// Prefetch hints to e that Gets of keys follow, if e is a Prefetcher;
// otherwise it does nothing.
func Prefetch(e Engine, keys [][]byte) {
	if p, ok := e.(Prefetcher); ok {
		p.Prefetch(keys)
	}
}
