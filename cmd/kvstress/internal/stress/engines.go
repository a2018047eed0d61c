package stress

// The engines kvstress can run without a node: each registers itself with
// logkv, and kvstress asks it what it can do (logkv's capability
// interfaces), never which one it is. A fourth engine is one more import
// here (kvnode has its own list, in node/engines.go).
import (
	_ "github.com/logkv/logkv/bitcask"
	_ "github.com/logkv/logkv/lsm"
	_ "github.com/logkv/logkv/memory"
)
