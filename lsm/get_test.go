package lsm

import (
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// TestGetFromTableOwnsValue checks that values a Get reads from a table
// (handed over without the second copy the memtable path makes) are the
// caller's: changing one changes no later Get's, and an empty value is
// present, not nil.
func TestGetFromTableOwnsValue(t *testing.T) {
	db, err := Open("db", smallOptions(vfs.NewMem()))
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Set([]byte("a"), []byte("value"), nil))
	require.NoError(t, db.Set([]byte("empty"), []byte{}, nil))
	require.NoError(t, db.Set([]byte("gone"), []byte("x"), nil))
	require.NoError(t, db.Delete([]byte("gone"), nil))
	require.NoError(t, db.flushAll())
	rs := db.loadReadState()
	require.True(t, rs.mem.empty() && len(rs.imm) == 0, "the keys are in tables now")
	rs.unref()

	v1, err := db.Get([]byte("a"))
	require.NoError(t, err)
	copy(v1, "XXXXX")
	v2, err := db.Get([]byte("a"))
	require.NoError(t, err)
	require.Equal(t, "value", string(v2))

	e, err := db.Get([]byte("empty"))
	require.NoError(t, err)
	require.NotNil(t, e)
	require.Empty(t, e)

	_, err = db.Get([]byte("gone"))
	require.ErrorIs(t, err, logkv.ErrNotFound)
}

// TestAppendGetEqualsGet checks that AppendGet reads what Get reads, on the
// DB and on a snapshot, for keys present (in the memtable and in tables,
// with empty values), absent and deleted, before and after a reopen; that
// it appends after dst's bytes, into dst's array when it has room, and
// returns dst itself when it finds nothing; and that a hit into a buffer large enough allocates nothing.
func TestAppendGetEqualsGet(t *testing.T) {
	fs := vfs.NewMem()
	db, err := Open("db", smallOptions(fs))
	require.NoError(t, err)
	keys := []string{"a", "empty", "gone", "absent", "mem", "memgone", "over"}
	require.NoError(t, db.Set([]byte("a"), []byte("value"), nil))
	require.NoError(t, db.Set([]byte("empty"), []byte{}, nil))
	require.NoError(t, db.Set([]byte("gone"), []byte("x"), nil))
	require.NoError(t, db.Set([]byte("over"), []byte("old"), nil))
	require.NoError(t, db.flushAll())
	require.NoError(t, db.Delete([]byte("gone"), nil))
	require.NoError(t, db.Set([]byte("over"), []byte("newer value"), nil))
	require.NoError(t, db.Set([]byte("mem"), []byte("in memtable"), nil))
	require.NoError(t, db.Set([]byte("memgone"), []byte("y"), nil))
	require.NoError(t, db.Delete([]byte("memgone"), nil))

	check := func(name string, r logkv.Reader) {
		t.Helper()
		a := r.(logkv.ValueAppender)
		for _, k := range keys {
			want, wantErr := r.Get([]byte(k))
			dst := append(make([]byte, 0, 64), "prefix"...)
			got, err := a.AppendGet(dst, []byte(k))
			if wantErr != nil {
				require.ErrorIs(t, err, wantErr, "%s %q", name, k)
				require.Equal(t, "prefix", string(got), "%s %q: dst unchanged", name, k)
				require.True(t, &got[0] == &dst[0] && cap(got) == cap(dst), "%s %q: dst itself returned", name, k)
				continue
			}
			require.NoError(t, err, "%s %q", name, k)
			require.Equal(t, "prefix"+string(want), string(got), "%s %q", name, k)
			// dst had room for the value: it was appended into dst's
			// array, not copied with dst's bytes into a new one.
			require.LessOrEqual(t, len(got), cap(dst), "%s %q: the test's values fit dst", name, k)
			require.True(t, &got[0] == &dst[0], "%s %q: the value was not appended into dst's spare capacity", name, k)
			// Into a nil buffer, as Get does.
			got, err = a.AppendGet(nil, []byte(k))
			require.NoError(t, err)
			require.Equal(t, string(want), string(got), "%s %q", name, k)
		}
	}
	check("db", db)
	snap, err := db.NewSnapshot()
	require.NoError(t, err)
	require.NoError(t, db.Set([]byte("a"), []byte("after the snapshot"), nil))
	require.NoError(t, db.Delete([]byte("over"), nil))
	check("snapshot", snap)
	v, err := logkv.AppendGet(snap, nil, []byte("a"))
	require.NoError(t, err)
	require.Equal(t, "value", string(v), "the snapshot's view")
	require.NoError(t, snap.Close())
	check("db after writes", db)
	require.NoError(t, db.flushAll())
	check("db flushed", db)

	// A table hit into a buffer with room allocates nothing (sync.Pool
	// drops items at random under the race detector).
	if !raceEnabled {
		buf := make([]byte, 0, 64)
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := db.AppendGet(buf, []byte("a")); err != nil {
				t.Fatal(err)
			}
		})
		require.Zero(t, allocs, "allocations per AppendGet hit")
	}

	require.NoError(t, db.Close())
	_, err = db.AppendGet(nil, []byte("a"))
	require.ErrorIs(t, err, logkv.ErrClosed)
	db, err = Open("db", smallOptions(fs))
	require.NoError(t, err)
	defer db.Close()
	check("db reopened", db)
}
