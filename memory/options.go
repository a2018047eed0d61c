package memory

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

// withDefaults returns a copy of o with defaults filled in.
func (o *Options) withDefaults() Options {
	if o == nil {
		return Options{}
	}
	return *o
}

// validate checks the options; there is nothing to check yet.
func (o *Options) validate() error { return nil }
