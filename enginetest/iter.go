package enginetest

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// iterOpKind is one Iterator positioning method.
type iterOpKind uint8

const (
	opFirst iterOpKind = iota
	opLast
	opSeekGE
	opSeekLT
	opNext
	opPrev
)

// iterOp is one call of a positioning method; key is SeekGE's or SeekLT's
// argument.
type iterOp struct {
	kind iterOpKind
	key  string
}

func (op iterOp) String() string {
	switch op.kind {
	case opFirst:
		return "First"
	case opLast:
		return "Last"
	case opSeekGE:
		return fmt.Sprintf("SeekGE(%q)", op.key)
	case opSeekLT:
		return fmt.Sprintf("SeekLT(%q)", op.key)
	case opNext:
		return "Next"
	case opPrev:
		return "Prev"
	}
	return "?"
}

var (
	first = iterOp{kind: opFirst}
	last  = iterOp{kind: opLast}
	next  = iterOp{kind: opNext}
	prev  = iterOp{kind: opPrev}
)

func seekGE(k string) iterOp { return iterOp{kind: opSeekGE, key: k} }
func seekLT(k string) iterOp { return iterOp{kind: opSeekLT, key: k} }

// iterModel is what an iterator over a frozen state within bounds must do:
// a sorted list and a position. Per the contract, Next and Prev on an
// iterator that is not at a key (new, or moved off either end) return false
// and leave it there.
type iterModel struct {
	keys, vals []string
	pos        int
	valid      bool
}

func newIterModel(s state, o *logkv.IterOptions) *iterModel {
	m := &iterModel{}
	for _, k := range s.sortedKeys() {
		if o.Contains([]byte(k)) {
			m.keys = append(m.keys, k)
			m.vals = append(m.vals, s[k])
		}
	}
	return m
}

func (m *iterModel) do(op iterOp) bool {
	switch op.kind {
	case opFirst:
		m.pos = 0
	case opLast:
		m.pos = len(m.keys) - 1
	case opSeekGE:
		m.pos = sort.SearchStrings(m.keys, op.key)
	case opSeekLT:
		m.pos = sort.SearchStrings(m.keys, op.key) - 1
	case opNext:
		if !m.valid {
			return false
		}
		m.pos++
	case opPrev:
		if !m.valid {
			return false
		}
		m.pos--
	}
	m.valid = m.pos >= 0 && m.pos < len(m.keys)
	return m.valid
}

// iterChecker drives an engine iterator and its model in step, and fails the
// test at the first difference, printing the ops so far.
type iterChecker struct {
	t     *testing.T
	it    logkv.Iterator
	m     *iterModel
	desc  string
	trace []string
}

func newIterChecker(t *testing.T, r logkv.Reader, s state, o *logkv.IterOptions, desc string) *iterChecker {
	t.Helper()
	it, err := r.NewIter(o)
	require.NoError(t, err, "NewIter(%s)", boundsString(o))
	return &iterChecker{t: t, it: it, m: newIterModel(s, o), desc: desc + " " + boundsString(o)}
}

func (c *iterChecker) step(op iterOp) {
	c.t.Helper()
	var got bool
	switch op.kind {
	case opFirst:
		got = c.it.First()
	case opLast:
		got = c.it.Last()
	case opSeekGE:
		got = c.it.SeekGE([]byte(op.key))
	case opSeekLT:
		got = c.it.SeekLT([]byte(op.key))
	case opNext:
		got = c.it.Next()
	case opPrev:
		got = c.it.Prev()
	}
	want := c.m.do(op)
	c.trace = append(c.trace, op.String())
	if len(c.trace) > 40 {
		c.trace = c.trace[len(c.trace)-30:]
	}
	ctx := func() string {
		return fmt.Sprintf("%s; ops (latest last): %s; the model's keys: %q", c.desc, strings.Join(c.trace, ", "), c.m.keys)
	}
	if got != want {
		wantAt := "<none>"
		if want {
			wantAt = fmt.Sprintf("%q", c.m.keys[c.m.pos])
		}
		gotAt := "<none>"
		if got && c.it.Valid() {
			gotAt = fmt.Sprintf("%q", c.it.Key())
		}
		require.Failf(c.t, "iterator position", "%s returned %v, want %v (want key %s, got key %s); %s", op, got, want, wantAt, gotAt, ctx())
	}
	// The messages are built only on failure: this runs for every move.
	if v := c.it.Valid(); v != want {
		require.Failf(c.t, "iterator Valid", "Valid() is %v after %s returned %v; %s", v, op, got, ctx())
	}
	if err := c.it.Error(); err != nil {
		require.Failf(c.t, "iterator Error", "Error() after %s: %v; %s", op, err, ctx())
	}
	if want {
		if k := c.it.Key(); string(k) != c.m.keys[c.m.pos] {
			require.Failf(c.t, "iterator Key", "Key() after %s is %q, want %q; %s", op, k, c.m.keys[c.m.pos], ctx())
		}
		if v := c.it.Value(); string(v) != c.m.vals[c.m.pos] {
			require.Failf(c.t, "iterator Value", "Value() of %q after %s is %.64q (%d bytes), want %.64q (%d bytes); %s",
				c.m.keys[c.m.pos], op, v, len(v), c.m.vals[c.m.pos], len(c.m.vals[c.m.pos]), ctx())
		}
	}
}

func (c *iterChecker) steps(ops ...iterOp) {
	c.t.Helper()
	for _, op := range ops {
		c.step(op)
	}
}

func (c *iterChecker) close() {
	c.t.Helper()
	require.NoError(c.t, c.it.Close(), "iterator Close; %s", c.desc)
}

func boundsString(o *logkv.IterOptions) string {
	if o == nil {
		return "[nil, nil)"
	}
	b := func(k []byte) string {
		if k == nil {
			return "nil"
		}
		return fmt.Sprintf("%q", k)
	}
	return fmt.Sprintf("[%s, %s)", b(o.LowerBound), b(o.UpperBound))
}

// iterData is the data set of the iterator tests: keys that are prefixes of
// each other, hold 0x00 and 0xff bytes, so that byte-wise order matters.
var iterData = state{
	"a": "v-a", "a\x00": "v-a0", "aa": "v-aa", "ab": "", "b": "v-b",
	"ba": "v-ba", "c": "v-c", "d\xff": "v-dff", "e": "v-e", "\xff": "v-ff",
}

// iterProbes are seek keys: every key of iterData and keys between, before
// and after them.
var iterProbes = append(iterData.sortedKeys(),
	"", "\x00", "a\x01", "a\xff", "az", "bb", "c\x00", "d", "d\xff\x00", "zz", "\xff\x00", "\xff\xff")

type boundsCase struct {
	name         string
	lower, upper []byte
}

func bk(s string) []byte { return []byte(s) }

var iterBounds = []boundsCase{
	{"nil-nil", nil, nil},
	{"lower-only", bk("aa"), nil},
	{"upper-only", nil, bk("c")},
	{"both-on-keys", bk("a\x00"), bk("b")},
	{"both-between-keys", bk("a\x01"), bk("bb")},
	{"around-most", bk("0"), bk("zz")},
	{"around-all", bk("\x00"), bk("\xff\xff")},
	{"one-key", bk("e"), bk("e\x00")},
	{"last-key-only", bk("\xff"), nil},
	{"below-all", nil, bk("a")},
	{"above-all", bk("\xff\x00"), nil},
	{"gap", bk("f"), bk("g")},
	{"empty-equal", bk("b"), bk("b")},
	{"empty-inverted", bk("c"), bk("b")},
	{"empty-lower", bk(""), bk("b")},
	{"empty-upper", bk("a"), bk("")},
}

// iterWalks are op sequences run after every positioning op, covering
// direction changes in the middle and at the edges.
func iterWalks() [][]iterOp {
	walks := [][]iterOp{
		{first, prev, next, prev},
		{last, next, prev, next},
		{first, next, prev, prev, next},
		{last, prev, next, next, prev},
		{first, next, next, prev, next, next, next, prev, prev, prev},
		{last, prev, prev, next, prev, prev, prev, next, next, next},
	}
	zig := []iterOp{first}
	zag := []iterOp{last}
	for range len(iterData) + 2 {
		zig = append(zig, next, next, prev)
		zag = append(zag, prev, prev, next)
	}
	walks = append(walks, zig, zag)
	for _, p := range iterProbes {
		walks = append(walks,
			[]iterOp{seekGE(p), next, prev, prev, next},
			[]iterOp{seekLT(p), prev, next, next, prev},
			[]iterOp{seekGE(p), prev, next},
			[]iterOp{seekLT(p), next, prev})
	}
	return walks
}

func testIter(t *testing.T, open OpenFunc, caps Capabilities) {
	t.Run("empty-engine", func(t *testing.T) {
		h := newHarness(t, open, caps)
		for _, bc := range iterBounds {
			c := newIterChecker(t, h.e, state{}, &logkv.IterOptions{LowerBound: bc.lower, UpperBound: bc.upper}, "empty engine")
			c.steps(next, prev, first, last, seekGE("a"), seekLT("z"), seekGE(""), seekLT("\xff\xff"), next, prev)
			c.close()
		}
	})

	t.Run("unpositioned", func(t *testing.T) {
		h := newHarness(t, open, caps)
		fill(t, h.e, iterData)
		for _, op := range []iterOp{next, prev} {
			it, err := h.e.NewIter(nil)
			require.NoError(t, err)
			require.False(t, it.Valid(), "a new iterator is not positioned")
			c := &iterChecker{t: t, it: it, m: newIterModel(iterData, nil), desc: "new iterator"}
			c.steps(op, op, first, next)
			c.close()
		}
	})

	t.Run("bounds", func(t *testing.T) {
		h := newHarness(t, open, caps)
		fill(t, h.e, iterData)
		walks := iterWalks()
		for _, bc := range iterBounds {
			t.Run(bc.name, func(t *testing.T) {
				o := &logkv.IterOptions{LowerBound: bc.lower, UpperBound: bc.upper}
				m := newIterModel(iterData, o)
				for _, backward := range []bool{false, true} {
					keys, _ := scan(t, h.e, o, backward)
					requireKeysEqual(t, m.keys, keys, "scan %s backward=%v", boundsString(o), backward)
				}
				c := newIterChecker(t, h.e, iterData, o, "bounds")
				for _, w := range walks {
					c.steps(w...)
				}
				c.close()
			})
		}
		// A nil *IterOptions and empty options mean all keys.
		keys, _ := scan(t, h.e, &logkv.IterOptions{}, false)
		requireKeysEqual(t, iterData.sortedKeys(), keys, "zero IterOptions")
	})

	t.Run("bound-and-seek-buffers-reusable", func(t *testing.T) {
		h := newHarness(t, open, caps)
		fill(t, h.e, iterData)
		lo, hi := []byte("a\x00"), []byte("c")
		o := &logkv.IterOptions{LowerBound: lo, UpperBound: hi}
		c := newIterChecker(t, h.e, iterData, o, "bounds")
		copy(lo, "\x00\x00")
		copy(hi, "\xff")
		o.LowerBound, o.UpperBound = nil, nil
		c.steps(first, prev, last, next, seekGE("0"), seekLT("z"))
		k := []byte("b")
		require.True(t, c.it.SeekGE(k))
		c.m.do(seekGE("b"))
		c.trace = append(c.trace, `SeekGE("b"), its buffer then changed to "a"`)
		copy(k, "a")
		c.steps(next, prev, prev)
		c.close()
	})

	t.Run("point-in-time", func(t *testing.T) {
		h := newHarness(t, open, caps)
		fill(t, h.e, iterData)
		c := newIterChecker(t, h.e, iterData, nil, "iterator created before later writes")
		c2 := newIterChecker(t, h.e, iterData, &logkv.IterOptions{LowerBound: bk("a\x00"), UpperBound: bk("d")}, "bounded iterator created before later writes")
		c.steps(first, next)
		c2.steps(last)
		// Change keys ahead of, behind and at the iterators' positions.
		set(t, h.e, "a\x00", "changed")
		del(t, h.e, "aa")
		set(t, h.e, "a\x00\x00", "new between")
		set(t, h.e, "0", "new first")
		set(t, h.e, "zz", "new")
		del(t, h.e, "\xff")
		del(t, h.e, "c")
		set(t, h.e, "bz", "new in bounds")
		var bt logkv.Batch
		bt.Set(bk("b"), bk("batched"))
		bt.Delete(bk("ba"))
		require.NoError(t, h.e.Apply(&bt, nil))
		for _, w := range iterWalks() {
			c.steps(w...)
			c2.steps(w...)
		}
		c.close()
		c2.close()
		now := state{"0": "new first", "a": "v-a", "a\x00": "changed", "a\x00\x00": "new between", "ab": "",
			"b": "batched", "bz": "new in bounds", "d\xff": "v-dff", "e": "v-e", "zz": "new"}
		requireState(t, h.e, now, "a new iterator sees the writes")
	})

	t.Run("key-value-copies", func(t *testing.T) {
		h := newHarness(t, open, caps)
		want := state{}
		for i := range 100 {
			want[fmt.Sprintf("key-%03d", i)] = strings.Repeat(string(rune('a'+i%26)), i*7)
		}
		fill(t, h.e, want)
		it, err := h.e.NewIter(nil)
		require.NoError(t, err)
		var keys, vals [][]byte
		for ok := it.First(); ok; ok = it.Next() {
			keys = append(keys, append([]byte(nil), it.Key()...))
			vals = append(vals, append([]byte(nil), it.Value()...))
		}
		for ok := it.Last(); ok; ok = it.Prev() {
			keys = append(keys, append([]byte(nil), it.Key()...))
			vals = append(vals, append([]byte(nil), it.Value()...))
		}
		require.NoError(t, it.Close())
		wantKeys := want.sortedKeys()
		require.Len(t, keys, 2*len(wantKeys))
		for i, k := range keys {
			var wk string
			if i < len(wantKeys) {
				wk = wantKeys[i]
			} else {
				wk = wantKeys[2*len(wantKeys)-1-i]
			}
			require.Equal(t, wk, string(k), "copied key %d", i)
			require.Equal(t, want[wk], string(vals[i]), "copied value of %q", wk)
		}
	})

	t.Run("logkv-All", func(t *testing.T) {
		h := newHarness(t, open, caps)
		fill(t, h.e, iterData)
		o := &logkv.IterOptions{LowerBound: bk("a\x00"), UpperBound: bk("e")}
		m := newIterModel(iterData, o)
		it, err := h.e.NewIter(o)
		require.NoError(t, err)
		var keys []string
		for k, v := range logkv.All(it) {
			keys = append(keys, string(k))
			require.Equal(t, iterData[string(k)], string(v))
		}
		require.NoError(t, it.Error())
		requireKeysEqual(t, m.keys, keys, "logkv.All")
		// Breaking out of the loop stops it; a second range starts again.
		n := 0
		for range logkv.All(it) {
			n++
			if n == 3 {
				break
			}
		}
		require.Equal(t, 3, n)
		require.Equal(t, m.keys[2], string(it.Key()), "after break the iterator stays where the loop stopped")
		keys = keys[:0]
		for k := range logkv.All(it) {
			keys = append(keys, string(k))
		}
		requireKeysEqual(t, m.keys, keys, "logkv.All again")
		require.NoError(t, it.Close())
	})

	t.Run("two-iterators-interleaved", func(t *testing.T) {
		h := newHarness(t, open, caps)
		fill(t, h.e, iterData)
		c1 := newIterChecker(t, h.e, iterData, nil, "first of two")
		c2 := newIterChecker(t, h.e, iterData, &logkv.IterOptions{LowerBound: bk("aa")}, "second of two")
		c1.step(first)
		c2.step(last)
		for range len(iterData) + 1 {
			c1.step(next)
			c2.step(prev)
		}
		c1.close()
		c2.close()
	})

	t.Run("close", func(t *testing.T) {
		h := newHarness(t, open, caps)
		fill(t, h.e, iterData)
		it, err := h.e.NewIter(nil)
		require.NoError(t, err)
		require.True(t, it.First())
		require.NoError(t, it.Close(), "first Close")
		requireClosedOK(t, it.Close(), "second iterator Close")
		require.False(t, it.Valid(), "Valid after Close")
		require.False(t, it.First(), "First after Close")
		require.False(t, it.Last(), "Last after Close")
		require.False(t, it.SeekGE(bk("a")), "SeekGE after Close")
		require.False(t, it.SeekLT(bk("z")), "SeekLT after Close")
		require.False(t, it.Next(), "Next after Close")
		require.False(t, it.Prev(), "Prev after Close")
		requireClosedOK(t, it.Close(), "third iterator Close")
		// An iterator closed without ever being positioned.
		it, err = h.e.NewIter(&logkv.IterOptions{LowerBound: bk("b")})
		require.NoError(t, err)
		require.NoError(t, it.Close())
		require.False(t, it.First(), "First after Close")
	})
}
