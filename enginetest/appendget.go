package enginetest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// testAppendGet checks an engine that implements logkv.ValueAppender: its
// AppendGet reads what Get reads (present, absent, deleted, overwritten,
// empty and large values, on the engine and on a snapshot that has it),
// appends after what dst holds without changing it, returns dst itself
// unchanged on a miss or an error, counts as one Get in Metrics, and after
// Close fails with ErrClosed. An engine without it skips.
func testAppendGet(t *testing.T, open OpenFunc, caps Capabilities) {
	h := newHarness(t, open, caps)
	if _, ok := h.e.(logkv.ValueAppender); !ok {
		t.Skip("engine does not implement logkv.ValueAppender")
	}
	e := h.e
	big := strings.Repeat("0123456789abcdef", 4096) // 64 KiB: past any inline or block size
	set(t, e, "k", "v1")
	set(t, e, "k", "v2") // overwritten
	set(t, e, "gone", "x")
	del(t, e, "gone")
	set(t, e, "empty", "")
	set(t, e, "big", big)
	set(t, e, "k\x00", "nul")
	keys := []string{"k", "gone", "empty", "big", "k\x00", "absent", "\x00", "\xff"}

	// check compares AppendGet on r with Get on r for every key, with an
	// empty, a nil and a non-empty dst (with and without spare capacity).
	check := func(r logkv.Reader, what string) {
		t.Helper()
		a := r.(logkv.ValueAppender)
		for _, k := range keys {
			want, wantErr := r.Get([]byte(k))
			prefixes := [][]byte{nil, {}, []byte("prefix:"), append(make([]byte, 0, 1<<17), "roomy:"...)}
			for _, p := range prefixes {
				dst := p
				var saved []byte
				if p != nil {
					saved = append([]byte(nil), p...)
				}
				got, err := a.AppendGet(dst, []byte(k))
				if wantErr != nil {
					require.ErrorIs(t, err, logkv.ErrNotFound, "%s: AppendGet(%q) where Get fails with %v", what, k, wantErr)
					require.Equal(t, len(p), len(got), "%s: AppendGet(%q) on a miss must return dst unchanged", what, k)
					require.True(t, bytes.Equal(saved, got), "%s: AppendGet(%q) on a miss changed dst", what, k)
					continue
				}
				require.NoError(t, err, "%s: AppendGet(%q) where Get succeeds", what, k)
				require.Equal(t, len(saved)+len(want), len(got), "%s: AppendGet(%q) length", what, k)
				require.True(t, bytes.Equal(saved, got[:len(saved)]), "%s: AppendGet(%q) changed what dst held", what, k)
				require.True(t, bytes.Equal(want, got[len(saved):]), "%s: AppendGet(%q) appended %.40q, Get returns %.40q", what, k, got[len(saved):], want)
			}
		}
	}
	check(e, "engine")

	// The appended bytes are the caller's: changing them changes nothing in
	// the engine.
	a := e.(logkv.ValueAppender)
	got, err := a.AppendGet(nil, []byte("k"))
	require.NoError(t, err)
	for i := range got {
		got[i] = 'X'
	}
	requireGet(t, e, "k", "v2", "after the caller changed what AppendGet appended")

	// Every AppendGet is one Get in Metrics.
	m0 := e.Metrics()
	_, _ = a.AppendGet(nil, []byte("k"))
	_, _ = a.AppendGet(nil, []byte("absent"))
	require.Equal(t, uint64(2), e.Metrics().Gets-m0.Gets, "two AppendGets must count as two Gets")

	// A snapshot that implements it reads its frozen view.
	s, err := e.NewSnapshot()
	require.NoError(t, err)
	set(t, e, "k", "after-snapshot")
	del(t, e, "big")
	if _, ok := s.(logkv.ValueAppender); ok {
		check(s, "snapshot")
		v, err := s.(logkv.ValueAppender).AppendGet([]byte("p"), []byte("k"))
		require.NoError(t, err)
		require.Equal(t, "pv2", string(v), "a snapshot's AppendGet must not see a later write")
	}
	require.NoError(t, s.Close())
	check(e, "engine after more writes")

	require.NoError(t, e.Close())
	dst := []byte("prefix")
	got, err = a.AppendGet(dst, []byte("k"))
	require.ErrorIs(t, err, logkv.ErrClosed, "AppendGet after Close")
	require.Equal(t, "prefix", string(got), "AppendGet after Close must return dst unchanged")
}
