package enginetest_test

import (
	"path/filepath"
	"testing"

	"github.com/logkv/logkv"
	_ "github.com/logkv/logkv/bitcask" // each registered engine is tested
	"github.com/logkv/logkv/enginetest"
	_ "github.com/logkv/logkv/lsm"
	"github.com/logkv/logkv/memory"
	"github.com/stretchr/testify/require"
)

// TestMetamorphic runs RunMetamorphic over every registered engine with a
// few option draws each: the engines are found through the registry, and
// their options drawn through logkv.TestTuner, so a new engine is covered by
// its import above.
func TestMetamorphic(t *testing.T) {
	for _, name := range logkv.Engines() {
		if name == brokenEngine {
			continue // TestMetamorphicCatches's
		}
		t.Run(name, func(t *testing.T) {
			// Three draws of options and operations: random seeds (or
			// $ENGINETEST_SEED), each logged.
			for range 3 {
				enginetest.RunMetamorphic(t, name, enginetest.MetamorphicOptions{})
			}
		})
	}
}

// brokenEngine is a memory engine whose Delete deletes nothing, registered
// for TestMetamorphicCatches.
const brokenEngine = "enginetest-broken-delete"

type ignoreDeletes struct{ logkv.Engine }

func (ignoreDeletes) Delete([]byte, *logkv.WriteOptions) error { return nil }

func init() {
	logkv.Register(brokenEngine, func(dir string, _ any) (logkv.Engine, error) {
		e, err := memory.Open(dir, nil)
		if err != nil {
			return nil, err
		}
		return ignoreDeletes{e}, nil
	})
}

// TestMetamorphicCatches: a drawn log finds the broken Delete, and the log
// written to a file and read back fails the same way at the same operation,
// so a failure reported by RunMetamorphic replays.
func TestMetamorphicCatches(t *testing.T) {
	ops := enginetest.GenMetaLog(brokenEngine, 7, 400)
	done, err := enginetest.RunMetaLog(t.TempDir(), ops)
	require.Error(t, err, "a Delete that deletes nothing went unseen")
	require.Less(t, done, len(ops))

	path := filepath.Join(t.TempDir(), "failed.log")
	require.NoError(t, enginetest.WriteMetaLog(path, ops[:done]))
	replay, err2 := enginetest.ReadMetaLog(path)
	require.NoError(t, err2)
	require.Equal(t, ops[:done], replay, "the log round-trips through its file")
	done2, err2 := enginetest.RunMetaLog(t.TempDir(), replay)
	require.Equal(t, done, done2)
	require.EqualError(t, err2, err.Error())

	// The same log against a working engine passes.
	replay[0].Args[0] = "memory"
	_, err = enginetest.RunMetaLog(t.TempDir(), replay)
	require.NoError(t, err)
}

func TestParseMetaOp(t *testing.T) {
	op, err := enginetest.ParseMetaOp(`batch "set" "a\x00" "v w" "del" "\xff"`)
	require.NoError(t, err)
	require.Equal(t, enginetest.MetaOp{Kind: "batch", Args: []string{"set", "a\x00", "v w", "del", "\xff"}}, op)
	require.Equal(t, `batch "set" "a\x00" "v w" "del" "\xff"`, op.String())
	op, err = enginetest.ParseMetaOp(`options "42"`)
	require.NoError(t, err)
	require.Equal(t, []string{"42"}, op.Args)
	for _, bad := range []string{`frob "x"`, `set "k"`, `get k`, `set "k" "v" "w"`, `options 42`} {
		_, err := enginetest.ParseMetaOp(bad)
		require.Error(t, err, bad)
	}
}
