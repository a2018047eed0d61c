package memory

import "github.com/logkv/logkv"

// Options configure a memory engine. A nil *Options, like the zero value,
// means the defaults.
//
// The engine has no tunables yet: its B-tree's node size is a compile-time
// constant (63 items, internal/ordtree's) and it has no files,
// caches or background work to configure. The struct exists so that
// logkv.Open("memory", dir, &memory.Options{}) and node configuration files
// work the same way as for the other engines, and so that options can be
// added without breaking callers.
type Options struct{}

// The memory engine keeps nothing across Close: a node checkpoints it.
var _ logkv.Volatile = (*Options)(nil)

// Volatile is true: the engine's data lives only in the process.
func (o *Options) Volatile() bool { return true }

// EnsureDefaults fills o's zero fields with their defaults (there are none
// yet) and returns o, as every options type of logkv does.
func (o *Options) EnsureDefaults() *Options { return o }

// Validate checks options that EnsureDefaults has filled; there is nothing
// to check yet.
func (o *Options) Validate() error { return nil }

// withDefaults returns a copy of o with defaults filled in.
func (o *Options) withDefaults() Options {
	if o == nil {
		return Options{}
	}
	return *o.EnsureDefaults()
}

// validate is Validate, under the name db.go calls.
func (o *Options) validate() error { return o.Validate() }
