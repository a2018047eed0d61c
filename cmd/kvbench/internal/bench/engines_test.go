package bench

// The real engines the tests run every benchmark and workload on, besides the
// fake: adding one is one import line and one name.
import (
	_ "github.com/logkv/logkv/bitcask"
	_ "github.com/logkv/logkv/lsm"
	_ "github.com/logkv/logkv/memory"
)

var realEngines = []string{"memory", "lsm", "bitcask"}
