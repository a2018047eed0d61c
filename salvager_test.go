package logkv_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/bitcask"
	_ "github.com/logkv/logkv/lsm"
	_ "github.com/logkv/logkv/memory"
)

// Every engine with files of its own can read them back (logkv.Salvager),
// and each ignores the files of another: asked about a bitcask directory,
// bitcask's Salvager finds its writes and lsm's finds nothing.
func TestSalvagers(t *testing.T) {
	dir := t.TempDir()
	db, err := bitcask.Open(dir, nil)
	require.NoError(t, err)
	require.NoError(t, db.Set([]byte("k"), []byte("v"), nil))
	require.NoError(t, db.Delete([]byte("gone"), nil))
	require.NoError(t, db.Close())

	found := map[string][]logkv.SalvagedEntry{}
	for _, name := range []string{"bitcask", "lsm", "memory"} {
		o, err := logkv.NewOptions(name)
		require.NoError(t, err)
		sv, ok := o.(logkv.Salvager)
		require.Equal(t, name != "memory", ok, "%s: a Salvager iff it keeps files", name)
		if !ok {
			continue
		}
		err = sv.Salvage(dir, func(e logkv.SalvagedEntry) error {
			e.Key, e.Value = append([]byte(nil), e.Key...), append([]byte(nil), e.Value...)
			found[name] = append(found[name], e)
			return nil
		}, func(s logkv.Skipped) error {
			t.Errorf("%s skipped %+v of an undamaged directory", name, s)
			return nil
		})
		require.NoError(t, err)
	}
	require.Empty(t, found["lsm"])
	require.Equal(t, []logkv.SalvagedEntry{
		{Seq: 1, Key: []byte("k"), Value: []byte("v")},
		{Seq: 2, Key: []byte("gone"), Delete: true},
	}, found["bitcask"])
}
